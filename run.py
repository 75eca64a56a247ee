"""Entry point: ``python run.py mode=backtest strategy=market_maker ...`` (see README)."""

from __future__ import annotations

from app.numba_cache import configure_numba_cache

configure_numba_cache()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from framework.config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Run the configured mode and return its objective, so Hydra sweepers can optimise it."""
    from app.main import run

    return run(cfg)


if __name__ == "__main__":
    main()
