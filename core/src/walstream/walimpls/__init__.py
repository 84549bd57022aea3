"""The WAL backend SPI and the helpers that find backends by name."""

from walstream.walimpls.options import (
    AccessMode,
    DeliverAll,
    DeliverLatest,
    DeliverPolicy,
    DeliverStartAfter,
    DeliverStartFrom,
    PChannelInfo,
    ReadOption,
)
from walstream.walimpls.spi import Builder, Capabilities, Opener, Scanner, WALImpl

__all__ = [
    "AccessMode",
    "Builder",
    "Capabilities",
    "DeliverAll",
    "DeliverLatest",
    "DeliverPolicy",
    "DeliverStartAfter",
    "DeliverStartFrom",
    "Opener",
    "PChannelInfo",
    "ReadOption",
    "Scanner",
    "WALImpl",
]
