"""The API's objects and the one conversion from engine events to them (``convert``)."""
