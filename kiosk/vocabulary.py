"""The kiosk's words, each defined once: screens, call reasons, outage options, display modes, volume levels,
lamp patterns and which pre-check outcomes are good. Pure names; the flow, the views, the runtime, the app and
the console import them from here (their texts live in catalogue/locales/<lang>/ui.json, and the staff-facing
ones — lamp patterns, call reasons, event kinds, command replies — in the staff-only <lang>/staff.json).
"""

from __future__ import annotations

from kiosk.precheck import Outcome

# --- screens (context keys per screen: docs/design.md "Flow") ------------------------------------------------

IDLE = "idle"
CHECKING = "checking"
RESULT = "result"
LOOKUP = "lookup"
LOOKUP_RESULT = "lookup_result"
CALLING = "calling"
STAFF_COMING = "staff_coming"
OUTAGE = "outage"
STAFF_PIN = "staff_pin"
STAFF = "staff"
SCREENS = (IDLE, CHECKING, RESULT, LOOKUP, LOOKUP_RESULT, CALLING, STAFF_COMING, OUTAGE, STAFF_PIN, STAFF)

# Where the kiosk rests: the one of these its state calls for (open call, outage mode, else idle).
HOME_SCREENS = frozenset({IDLE, CALLING, STAFF_COMING, OUTAGE})
# Screens whose guidance the speaker button reads out (when the language has a voice and it is not muted).
SPEAKABLE_SCREENS = frozenset({RESULT, LOOKUP_RESULT, CALLING, STAFF_COMING, OUTAGE})

# --- outage mode and calls -----------------------------------------------------------------------------------

# Interim-operation options shown in outage mode (texts: `outage.option.<option>`).
OUTAGE_OPTIONS = ("shikaku_kakuninsho", "mynaportal_screen", "moushitatesho")

# Why a call was opened (texts: `calling.reason.<reason>`).
CALL_PATIENT, CALL_STAFF_CODE, CALL_OUTAGE, CALL_REPEATED_FAILURES = (
    "patient_request", "staff_code", "outage", "repeated_failures")
CALL_REASONS = (CALL_PATIENT, CALL_STAFF_CODE, CALL_OUTAGE, CALL_REPEATED_FAILURES)

# --- the patient's display and the staff's voice settings ----------------------------------------------------

# The patient's display toggles (tap `display:<mode>` on the idle screen; both reset at idle).
LARGE_TEXT, HIGH_CONTRAST = "large_text", "high_contrast"
DISPLAY_MODES = (LARGE_TEXT, HIGH_CONTRAST)
VOLUME_LEVELS = (0.2, 0.4, 0.6, 0.8, 1.0)  # staff mode's volume button steps through these (mute is its own toggle)

# --- the lamp (hardware.signals.Lamp.show) -------------------------------------------------------------------

LAMP_OFF, LAMP_CALL, LAMP_ACKNOWLEDGED, LAMP_OUTAGE, LAMP_READER_FAULT = (
    "off", "call", "acknowledged", "outage", "reader_fault")
# escalated: a call unacknowledged past [calls] escalate_seconds; no_console: no staff console of the site is up
LAMP_ESCALATED, LAMP_NO_CONSOLE = "escalated", "no_console"
LAMP_PATTERNS = (LAMP_OFF, LAMP_CALL, LAMP_ACKNOWLEDGED, LAMP_OUTAGE, LAMP_READER_FAULT, LAMP_ESCALATED,
                 LAMP_NO_CONSOLE)

# --- pre-check outcomes --------------------------------------------------------------------------------------

# The outcomes that mean "this will work on the official reader" (StrEnum members: equal to their values).
GOOD_OUTCOMES = frozenset({Outcome.MYNUMBER_CARD, Outcome.SMARTPHONE_ANDROID, Outcome.SMARTPHONE_IPHONE})

# --- staff --------------------------------------------------------------------------------------------------

# The languages staff texts exist in (catalogue/locales/<lang>/staff.json and doctor.json, the console's
# strings). The kiosk's staff screen uses the kiosk's current language when it is one of these, else the staff
# language (`[console] language`, Japanese by default): see kiosk.flow.Flow.
STAFF_LANGUAGES = ("ja", "en")
# The facility's time zone when `[facility] timezone` does not say (an IANA name): staff screens, the console and
# reports show and count time in it.
DEFAULT_TIMEZONE = "Asia/Tokyo"
