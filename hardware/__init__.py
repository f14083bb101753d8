"""Device adapters: card readers, lamp, buzzer and buttons. Identifiers never leave this package."""
