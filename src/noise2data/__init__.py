"""noise2data: flow matching and diffusion models on any tensor data.

One convention throughout: ``x: (B, *D)``, ``t: (B,)``, time runs from noise at t = 0 to data at
t = 1, and ``x_t = alpha_t * x1 + sigma_t * x0`` with ``x0 ~ N(0, I)``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .couplings import COUPLINGS, minibatch_ot  # noqa: E402
from .errors import UserError  # noqa: E402
from .fields import Field, model_field, velocity_to_score  # noqa: E402
from .guidance import classifier_free_guidance, guided_model_field  # noqa: E402
from .losses import (  # noqa: E402
    TimeDistribution,
    denoising_score_matching_loss,
    flow_matching_loss,
    prediction_loss,
)
from .paths import GaussianPath, PathSample, convert_prediction, make_path, make_schedule  # noqa: E402
from .prior import standard_normal  # noqa: E402
from .samplers import (  # noqa: E402
    ODE_SOLVERS,
    SamplerOutput,
    constant_diffusion,
    dopri5,
    edm_grid,
    euler,
    euler_maruyama,
    heun,
    integrate,
    langevin,
    midpoint,
    rk4,
    sde_drift,
    uniform_grid,
)

__all__ = [
    "COUPLINGS", "Field", "GaussianPath", "ODE_SOLVERS", "PathSample", "SamplerOutput", "TimeDistribution",
    "UserError", "__version__", "classifier_free_guidance", "constant_diffusion", "convert_prediction",
    "denoising_score_matching_loss", "dopri5", "edm_grid", "euler", "euler_maruyama", "flow_matching_loss",
    "guided_model_field", "heun", "integrate", "langevin", "make_path", "make_schedule", "midpoint",
    "minibatch_ot", "model_field", "prediction_loss", "rk4", "sde_drift", "standard_normal", "uniform_grid",
    "velocity_to_score",
]
