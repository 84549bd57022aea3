"""The object-store SPI and the helpers that find and open object stores."""

from walstream.objectstore.registry import driver_for_url, get_driver, open_store, open_store_url
from walstream.objectstore.spi import (
    MAX_KEY_BYTES,
    InvalidRangeError,
    ObjectMeta,
    ObjectStore,
    ObjectStoreCapabilities,
    ObjectStoreDriver,
    check_range,
    key_in_prefix,
    range_past_end,
    require,
    slice_range,
    validate_key,
    validate_prefix,
)

__all__ = [
    "MAX_KEY_BYTES",
    "InvalidRangeError",
    "ObjectMeta",
    "ObjectStore",
    "ObjectStoreCapabilities",
    "ObjectStoreDriver",
    "check_range",
    "driver_for_url",
    "get_driver",
    "key_in_prefix",
    "open_store",
    "open_store_url",
    "range_past_end",
    "require",
    "slice_range",
    "validate_key",
    "validate_prefix",
]
