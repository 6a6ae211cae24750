"""imfed: secure interconnection of instant-messaging systems (T/CIIA draft standard)."""

__version__ = "0.1.0"
