"""The simulated LLM server: OpenAI-, Anthropic-, Ollama-, TGI- and llama.cpp-compatible,
with known, controllable timing. infermeter's embedded default upstream, the fixture for
tests and the target for benchmarks. See docs/simulator.md.
"""

from proxy.simulator.app import SimulatorApp, create_app
from proxy.simulator.config import SimConfig

__all__ = ["SimConfig", "SimulatorApp", "create_app"]
