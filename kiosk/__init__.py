"""Companion unit for the face-auth card reader (オンライン資格確認).

Pure core: catalogue, precheck, flow, events. Adapters: hardware/, MQTT link, Kivy UI, web console.
"""

__version__ = "0.1.0"
