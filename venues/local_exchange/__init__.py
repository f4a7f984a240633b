"""A local exchange for tests and demos: a loopback server speaking enough of Binance's spot and
USD-M futures REST and websocket API for the real ccxt client, playing bars from a data set,
matching orders against them and injecting faults on request. See ``docs/local_exchange.md``."""

from venues.local_exchange._data import INTERVAL_MS, Bar, LocalMarket, markets_from_dataset
from venues.local_exchange._engine import BinanceError, Engine, StepResult
from venues.local_exchange._futures import FuturesEngine
from venues.local_exchange._server import Faults, LocalExchange, ccxt_config, ccxt_urls

__all__ = [
    "INTERVAL_MS",
    "Bar",
    "BinanceError",
    "Engine",
    "Faults",
    "FuturesEngine",
    "LocalExchange",
    "LocalMarket",
    "StepResult",
    "ccxt_config",
    "ccxt_urls",
    "markets_from_dataset",
]
