"""The Kivy touchscreen UI. `KioskApp` is imported lazily: importing Kivy's window opens a window, and the
pure parts (kiosk.app.texts, kiosk.app.views) are used headless too."""


def __getattr__(name: str):
    if name == "KioskApp":
        from kiosk.app.kioskapp import KioskApp

        return KioskApp
    raise AttributeError(f"module 'kiosk.app' has no attribute {name!r}")
