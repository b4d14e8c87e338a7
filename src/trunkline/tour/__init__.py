"""The tour: start a service on this machine over every transport, talk to it, show how.

Logic only (it returns results and never prints); ``trunkline tour`` renders them.

    result = await trunkline.tour.run_tour(rounds=500)
    for leg in result.legs:
        print(leg.title, leg.latency)
"""

from __future__ import annotations

from .byname_leg import ByNameLeg, ByNameLegResult  # registers the by-name leg
from .http_leg import HttpLeg, HttpLegResult  # registers the HTTP leg
from .legs import DatagramLeg, Leg, StreamLeg, TourContext, default_legs, register_leg
from .model import Cleanup, Latency, LegResult, StepTiming, TourResult
from .runner import DEFAULT_ROUNDS, MESSAGE_BYTES, run_tour
from .trace_leg import TraceLeg  # registers the trace leg
from .ws_leg import WsLeg, WsLegResult  # registers the WebSocket leg

__all__ = [
    "ByNameLeg", "ByNameLegResult", "DEFAULT_ROUNDS", "MESSAGE_BYTES", "Cleanup",
    "DatagramLeg", "HttpLeg", "HttpLegResult",
    "Latency", "Leg", "LegResult", "StepTiming", "StreamLeg", "TourContext", "TourResult",
    "TraceLeg", "WsLeg", "WsLegResult", "default_legs", "register_leg", "run_tour",
]
