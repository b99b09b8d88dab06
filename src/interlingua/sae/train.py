"""Training sparse autoencoders: one per hook point, from one stream of batches, resumable exactly.

The loop per batch and hook: scale the batch so that ``E‖x‖ = √d_in`` (the scale is fixed from
the first batch and folded into the exported weights, so hyper-parameters mean the same on every
model), take :meth:`SparseAutoencoder.losses`, add AuxK, then one optimiser step (schedule-free
Adam by default, :mod:`interlingua.sae.optim`, which also keeps decoder rows at unit norm with the
gradient's along-row component removed; or Adam with those two done around it). Everything that
determines the next step — weights, optimiser state, dead-latent counters, the batch position,
the step — is in the checkpoint, which is written atomically; a resumed run continues bit for bit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interlingua import _io
from interlingua.errors import InterlinguaError
from interlingua.models.dtype import DTYPE_CHOICES, resolve_dtype
from interlingua.sae.data import Batches, BatchState, Source
from interlingua.sae.model import ARCHITECTURES, SAEConfig, SparseAutoencoder
from interlingua.sae.optim import ScheduleFreeAdam

CHECKPOINT_DIR = "checkpoint"
DIVERGED_FVU = 100.0  # see Trainer._check_converging; learning rates up to 1 peak below 10 on test data
STATE_FILE = "state.safetensors"
META_FILE = "trainer.json"


@dataclass
class TrainConfig:
    """Training settings. ``d_sae`` defaults to ``expansion × d_in``; ``lr`` to ``lr_base · √(16384 / d_sae)``.

    ``optimizer`` is ``sfadam`` (schedule-free Adam, :mod:`interlingua.sae.optim`; no decay needed)
    or ``adam`` (with ``decay_fraction`` of linear decay at the end). Both warm up linearly over
    ``warmup_steps`` (default 5% of the run, at most 100 steps). The encoder starts as the decoder's
    transpose times ``encoder_init_scale``.

    ``sparsity_coefficient`` is the L1 weight (ReLU; default 1.0) or the L0 weight (JumpReLU;
    default 0.002) against FVU, ramped in linearly over ``sparsity_warmup`` of the run. A latent is
    dead once ``dead_after`` vectors pass without it firing; AuxK (TopK / BatchTopK) then trains the
    top ``aux_k`` dead latents (default ``d_in / 2``) on the residual with weight ``aux_coefficient``.
    ``compute_dtype`` is the encoder matmul's dtype (``auto``: bfloat16 where the hardware has
    native support, else float32; :func:`interlingua.models.dtype.auto_dtype`); weights and
    optimiser state stay float32.
    """

    architecture: str = "topk"
    d_sae: int | None = None
    expansion: int = 16
    k: int | None = 32
    batch_size: int = 1024
    total_vectors: int = 2_000_000
    optimizer: str = "sfadam"
    lr: float | None = None
    lr_base: float | None = None
    warmup_steps: int | None = None
    decay_fraction: float | None = None
    encoder_init_scale: float = 0.3
    sparsity_coefficient: float | None = None
    sparsity_warmup: float = 0.05
    aux_k: int | None = None
    aux_coefficient: float = 1 / 32
    dead_after: int = 1_000_000
    bandwidth: float = 0.05
    threshold_init: float = 0.1
    compute_dtype: str = "auto"
    seed: int = 0
    checkpoint_every: int = 500
    adam_betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        self._check_numbers()
        if self.architecture not in ARCHITECTURES:
            raise InterlinguaError(f"unknown architecture '{self.architecture}'; choose from {', '.join(ARCHITECTURES)}.")
        if self.batch_size < 1 or self.total_vectors < 1:
            raise InterlinguaError("batch size and the number of training vectors must be positive.")
        if self.optimizer not in ("sfadam", "adam"):
            raise InterlinguaError(f"optimizer must be sfadam or adam (got {self.optimizer}).")
        if self.compute_dtype not in DTYPE_CHOICES:
            raise InterlinguaError(f"compute dtype must be {', '.join(DTYPE_CHOICES)} (got {self.compute_dtype}).")
        self.adam_betas = tuple(self.adam_betas)

    def _check_numbers(self) -> None:
        """Refuse counts below 1 and rates or weights that are not finite numbers in range (a misread, not a setting)."""
        counts = {"d_sae": self.d_sae, "expansion": self.expansion, "k": self.k, "dead_after": self.dead_after,
                  "checkpoint_every": self.checkpoint_every, "aux_k": self.aux_k, "warmup_steps": self.warmup_steps}
        for name, value in counts.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InterlinguaError(f"{name} must be a whole number of at least 1 (got {value!r}).")
        rates = {"lr": (self.lr, True), "lr_base": (self.lr_base, True),
                 "sparsity_coefficient": (self.sparsity_coefficient, False),
                 "aux_coefficient": (self.aux_coefficient, False), "encoder_init_scale": (self.encoder_init_scale, True),
                 "bandwidth": (self.bandwidth, True), "sparsity_warmup": (self.sparsity_warmup, False)}
        for name, (value, positive) in rates.items():
            if value is not None and not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
                raise InterlinguaError(f"{name} must be a finite number {'above' if positive else 'of at least'} 0 "
                                       f"(got {value!r}).")
        if self.decay_fraction is not None and not 0 <= self.decay_fraction <= 1:
            raise InterlinguaError(f"decay_fraction must be between 0 and 1 (got {self.decay_fraction!r}).")

    @property
    def steps(self) -> int:
        return max(1, self.total_vectors // self.batch_size)

    def width(self, d_in: int) -> int:
        return self.d_sae or self.expansion * d_in

    def warmup(self) -> int:
        """``warmup_steps``, by default 5% of the run (at most 100 steps)."""
        return self.warmup_steps if self.warmup_steps is not None else min(100, max(1, self.steps // 20))

    def learning_rate(self, d_sae: int) -> float:
        if self.lr is not None:
            return self.lr
        base = self.lr_base if self.lr_base is not None else {"sfadam": 5e-3, "adam": 4e-3}[self.optimizer]
        return base * math.sqrt(16384 / d_sae)

    def decay(self) -> float:
        """Fraction of the run with linear decay (schedule-free: 0)."""
        if self.decay_fraction is not None:
            return self.decay_fraction
        return 0.0 if self.optimizer == "sfadam" else 0.2

    def coefficient(self) -> float:
        if self.sparsity_coefficient is not None:
            return self.sparsity_coefficient
        return {"relu": 1.0, "jumprelu": 0.002}.get(self.architecture, 0.0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS (Linux only).

    Each training step frees and reallocates tens of MB of temporaries (gradients, the
    pre-activation matrix). By default glibc serves blocks that large with ``mmap`` and unmaps them
    on free, so every step page-faults the same memory back in; on CPU that costs more than the
    sparse arithmetic. Raising the mmap and trim thresholds (as ``MALLOC_MMAP_THRESHOLD_`` /
    ``MALLOC_TRIM_THRESHOLD_`` would) makes freed blocks reusable. The process keeps its peak
    memory instead of shrinking between steps. Returns whether the setting was applied.
    """
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def lr_at(step: int, cfg: TrainConfig, base: float) -> float:
    """Linear warm-up over ``cfg.warmup()`` steps, constant, then linear decay to 0 over the last ``cfg.decay()``."""
    total = cfg.steps
    warm = min(1.0, (step + 1) / cfg.warmup())
    decay_start = total * (1 - cfg.decay())
    decay = 1.0 if step < decay_start else max(0.0, (total - step) / max(1.0, total - decay_start))
    return base * warm * decay


@dataclass
class HookState:
    """Per-hook training state next to its SAE."""

    sae: SparseAutoencoder
    optimizer: torch.optim.Optimizer
    scale: float
    since_fired: Tensor  # vectors since each latent last fired
    fvu_ema: float = math.nan
    l0_ema: float = math.nan


@dataclass
class TrainResult:
    """Trained SAEs (folded to act on raw activations) and a JSON-ready summary."""

    saes: dict[str, SparseAutoencoder]
    summary: dict = field(default_factory=dict)


def _make_optimizer(sae: SparseAutoencoder, cfg: TrainConfig) -> torch.optim.Optimizer:
    lr = cfg.learning_rate(sae.d_sae)
    if cfg.optimizer == "sfadam":  # the decoder's unit-norm constraint is applied inside the step
        others = [p for n, p in sae.named_parameters() if n != "W_dec"]
        return ScheduleFreeAdam([{"params": [sae.W_dec], "unit_rows": True}, {"params": others}], lr=lr,
                                betas=cfg.adam_betas)
    try:
        return torch.optim.Adam(sae.parameters(), lr=lr, betas=cfg.adam_betas, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - very old torch / unsupported device
        return torch.optim.Adam(sae.parameters(), lr=lr, betas=cfg.adam_betas)


def job_digest(cfg: TrainConfig, source: dict, hooks: list[str]) -> str:
    """Identifies a training job; a checkpoint only resumes the job it belongs to."""
    blob = json.dumps({"cfg": {k: v for k, v in cfg.to_dict().items() if k != "checkpoint_every"},
                       "source": source, "hooks": hooks}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Trainer:
    """Trains one SAE per hook of ``source``; ``out`` holds checkpoints and the exported SAEs.

    Create it, then call :meth:`run`. With ``out`` holding a checkpoint of the same job, training
    resumes from it (``overwrite=True`` starts afresh).
    """

    def __init__(self, source: Source, cfg: TrainConfig, out: str | Path | None = None, *,
                 overwrite: bool = False, device: str | torch.device = "cpu",
                 provenance: dict | None = None):
        self.source = source
        self.cfg = cfg
        self.out = Path(out) if out is not None else None
        self.device = torch.device(device)
        self.compute_dtype = resolve_dtype(cfg.compute_dtype, self.device)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.provenance = provenance or {}
        self.hooks = list(source.hooks)
        self.digest = job_digest(cfg, source.describe(), self.hooks)
        self.step = 0
        self.batches = Batches(source, cfg.batch_size, seed=cfg.seed)
        self.states: dict[str, HookState] = {}
        self.resumed_from: int | None = None
        self.seconds = 0.0
        if self.out is not None:
            if self.out.exists() and not self.out.is_dir():
                raise InterlinguaError(f"--out {self.out} is a file; SAE training writes a directory there.")
            with self._writing():
                ckpt = self._settle_out_dir()
                if overwrite:
                    _io.discard_dir(ckpt)
                if ckpt.exists():
                    self._load_checkpoint(ckpt)

    # ---- set-up --------------------------------------------------------------------------------

    def _init_states(self, batch: dict[str, Tensor]) -> None:
        for i, hook in enumerate(self.hooks):
            x = batch[hook].to(self.device, torch.float32)
            d_in = x.shape[1]
            d_sae = self.cfg.width(d_in)
            if self.cfg.architecture in ("topk", "batchtopk") and self.cfg.k > d_sae:
                raise InterlinguaError(f"k = {self.cfg.k} active latents is more than the {d_sae} latents of the "
                                       "SAE; lower --k or raise --latents.")
            sae_cfg = SAEConfig(architecture=self.cfg.architecture, d_in=d_in, d_sae=d_sae, k=self.cfg.k
                                if self.cfg.architecture in ("topk", "batchtopk") else None,
                                bandwidth=self.cfg.bandwidth, hook_name=hook,
                                model_name=str(self.provenance.get("model", "")))
            sae = SparseAutoencoder(sae_cfg, seed=self.cfg.seed * 7919 + i, threshold_init=self.cfg.threshold_init,
                                    encoder_init_scale=self.cfg.encoder_init_scale, device=self.device)
            mean_norm = float(x.norm(dim=1).mean())
            if not mean_norm > 0:
                raise InterlinguaError(f"the activations at {hook} are all zero; nothing to learn.")
            scale = math.sqrt(d_in) / mean_norm
            sae.init_b_dec_(x * scale)
            self.states[hook] = HookState(sae=sae, optimizer=_make_optimizer(sae, self.cfg), scale=scale,
                                          since_fired=torch.zeros(d_sae, dtype=torch.long, device=self.device))

    # ---- one step ------------------------------------------------------------------------------

    def _step_hook(self, hook: str, x: Tensor) -> tuple[float, float]:
        st = self.states[hook]
        sae, cfg = st.sae, self.cfg
        x = x.to(self.device, torch.float32) * st.scale
        aux = cfg.architecture in ("topk", "batchtopk") and cfg.aux_coefficient > 0
        dead = st.since_fired >= cfg.dead_after if aux else None
        ramp = min(1.0, (self.step + 1) / max(1.0, cfg.sparsity_warmup * cfg.steps))
        out = sae.losses(x, sparsity_coefficient=cfg.coefficient() * ramp, dead_mask=dead,
                         aux_k=cfg.aux_k or max(1, sae.d_in // 2), compute_dtype=self.compute_dtype)
        loss = out.loss + cfg.aux_coefficient * out.auxk if aux else out.loss
        if not torch.isfinite(loss):
            raise InterlinguaError(f"the training loss at {hook} became {float(loss)} at step {self.step}; "
                                   f"lower the learning rate (now {cfg.learning_rate(sae.d_sae):.2e}, --lr) and "
                                   "start again (--overwrite).")
        loss.backward()
        fused_constraint = isinstance(st.optimizer, ScheduleFreeAdam)
        if not fused_constraint:
            sae.remove_parallel_grad_()
        lr = lr_at(self.step, cfg, cfg.learning_rate(sae.d_sae))
        for group in st.optimizer.param_groups:
            group["lr"] = lr
        st.optimizer.step()
        st.optimizer.zero_grad(set_to_none=True)
        if not fused_constraint:
            sae.normalize_decoder_()
        code = out.code
        with torch.no_grad():
            if cfg.architecture == "jumprelu":
                sae.threshold.clamp_(min=0.0)
            if cfg.architecture == "batchtopk":
                sae.update_batchtopk_threshold_(code)
            st.since_fired += x.shape[0]
            fired = code.indices[code.values > 0]
            st.since_fired[fired] = 0
        fvu = float(out.fvu.detach())
        l0 = float((code.values > 0).sum()) / x.shape[0]
        st.fvu_ema = fvu if math.isnan(st.fvu_ema) else 0.9 * st.fvu_ema + 0.1 * fvu
        st.l0_ema = l0 if math.isnan(st.l0_ema) else 0.9 * st.l0_ema + 0.1 * l0
        self._check_converging(hook, st)
        return fvu, l0

    def _check_converging(self, hook: str, st: HookState) -> None:
        """Stop with a clear message once training has diverged, instead of saving a useless SAE.

        Reconstructing every vector by the batch mean scores FVU 1; a healthy run starts below that
        and falls. An averaged FVU above :data:`DIVERGED_FVU` (a learning rate too high, ~1e-1 and up)
        means the weights have run away, and more steps will not bring them back.
        """
        if st.fvu_ema > DIVERGED_FVU:
            raise InterlinguaError(
                f"training at {hook} diverged: the reconstruction error (FVU, averaged over steps) reached "
                f"{st.fvu_ema:.3g} at step {self.step}, where reconstructing every vector by the mean scores 1. "
                f"Lower the learning rate (now {self.cfg.learning_rate(st.sae.d_sae):.2e}, --lr) and start again "
                "(--overwrite)."
            )

    def train_step(self, batch: dict[str, Tensor]) -> None:
        """One optimisation step of every hook's SAE on ``batch`` (``{hook: [batch, d_in]}``)."""
        if not self.states:
            self._init_states(batch)
        for hook in self.hooks:
            self._step_hook(hook, batch[hook])
        self.step += 1

    def dead_fraction(self, hook: str) -> float:
        st = self.states[hook]
        return float((st.since_fired >= self.cfg.dead_after).float().mean())

    # ---- the loop ------------------------------------------------------------------------------

    def run(self, *, progress: bool = True, stop_after: int | None = None,
            on_step: Callable[[Trainer], None] | None = None) -> TrainResult:
        """Train to ``cfg.steps`` (or just ``stop_after`` more steps, for tests and time budgets)."""
        with self._writing():
            self._catch_up()
            return self._run(progress=progress, stop_after=stop_after, on_step=on_step)

    def _writing(self):
        """Hold the output directory's lock (:func:`interlingua._io.writing`); nothing to hold without one."""
        return _io.writing(self.out) if self.out is not None else contextlib.nullcontext()

    def _catch_up(self) -> None:
        """Continue from the checkpoint on disk if another run moved it on since this trainer read it.

        A trainer reads its checkpoint when it is created and writes while it runs, holding the
        lock each time; in between another process may have trained the same job further (or put
        another job there, which :meth:`_load_checkpoint` refuses).
        """
        meta = self.out / CHECKPOINT_DIR / META_FILE if self.out is not None else None
        if meta is not None and meta.is_file():
            on_disk = _io.load_json(meta, "Pass --overwrite to start this training afresh in the same directory.")
            if (on_disk.get("digest"), on_disk.get("step")) != (self.digest, self.step):
                self._load_checkpoint(self.out / CHECKPOINT_DIR)

    def _run(self, *, progress: bool, stop_after: int | None,
             on_step: Callable[[Trainer], None] | None) -> TrainResult:
        """The training loop of :meth:`run`, with the output directory locked."""
        total = self.cfg.steps
        end = total if stop_after is None else min(total, self.step + stop_after)
        t0 = time.perf_counter()
        with tqdm(total=total, initial=self.step, unit="step", desc="sae " + ",".join(self.hooks),
                  disable=not progress) as bar:
            while self.step < end:
                self.train_step(next(self.batches))
                bar.update(1)
                if self.step % 10 == 0 or self.step == end:
                    h = self.hooks[0]
                    bar.set_postfix(fvu=f"{self.states[h].fvu_ema:.3f}", l0=f"{self.states[h].l0_ema:.1f}",
                                    dead=f"{self.dead_fraction(h):.1%}")
                if on_step:
                    on_step(self)
                if self.out is not None and (self.step % self.cfg.checkpoint_every == 0 or self.step == end):
                    self.seconds += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.save_checkpoint()
        self.seconds += time.perf_counter() - t0
        saes = self.export()
        summary = self.summary()
        if self.out is not None and self.step >= total:
            from interlingua.sae.files import save_sae

            for hook, sae in saes.items():
                save_sae(sae, self.out / _dir_name(hook))
            _io.write_json(self.out / "training.json", summary)
            self._settle_out_dir()
        return TrainResult(saes=saes, summary=summary)

    def export(self) -> dict[str, SparseAutoencoder]:
        """Copies of the SAEs acting on raw (unscaled) activations, with provenance."""
        import copy

        out = {}
        for hook, st in self.states.items():
            sae = copy.deepcopy(st.sae)
            if isinstance(st.optimizer, ScheduleFreeAdam):  # evaluate at the averaged point x
                with torch.no_grad():
                    for (_, p), (_, q) in zip(st.sae.named_parameters(), sae.named_parameters()):
                        q.copy_(st.optimizer.averaged(p))
                    sae.normalize_decoder_()
                    if self.cfg.architecture == "jumprelu":
                        sae.threshold.clamp_(min=0.0)
            sae.fold_input_scale_(st.scale)
            sae.requires_grad_(False)
            sae.cfg.provenance = {**self.provenance, "hook": hook, "training": self.cfg.to_dict(),
                                  "source": self.source.describe(), "steps": self.step,
                                  "vectors": self.step * self.cfg.batch_size, "input_scale": st.scale,
                                  "compute_dtype": str(self.compute_dtype).removeprefix("torch.")}
            out[hook] = sae
        return out

    def summary(self) -> dict:
        return {
            "steps": self.step,
            "vectors": self.step * self.cfg.batch_size,
            "seconds": round(self.seconds, 2),
            "vectors_per_s": round(self.step * self.cfg.batch_size / self.seconds, 1) if self.seconds else None,
            "resumed_from_step": self.resumed_from,
            "compute_dtype": str(self.compute_dtype).removeprefix("torch."),
            "config": self.cfg.to_dict(),
            "source": self.source.describe(),
            "hooks": {h: {"train_fvu_ema": round(st.fvu_ema, 5), "train_l0_ema": round(st.l0_ema, 2),
                          "dead_fraction": round(self.dead_fraction(h), 5), "input_scale": st.scale}
                      for h, st in self.states.items()},
        }

    # ---- checkpoints -----------------------------------------------------------------------------

    def _own_names(self) -> set[str]:
        """What this job writes into ``out``: the checkpoint, one SAE directory per hook, training.json."""
        return {CHECKPOINT_DIR, "training.json", *(_dir_name(h) for h in self.hooks)}

    def _settle_out_dir(self) -> Path:
        """Put back any directory a kill left aside, drop this job's leftovers, and return the checkpoint path.

        Run when the job starts (or resumes) and when it completes: a kill during a checkpoint or
        export write leaves a complete copy under a hidden name (see :func:`interlingua._io.atomic_dir`),
        and temporary files that nothing else would ever remove.
        """
        own = self._own_names()
        for name in own - {"training.json"}:
            _io.recover_dir(self.out / name)
        _io.remove_leftovers(self.out, own.__contains__)
        return self.out / CHECKPOINT_DIR

    def save_checkpoint(self) -> Path:
        """Write everything needed to continue exactly (atomically replaces the previous checkpoint)."""
        if self.out is None:
            raise InterlinguaError("this trainer has no output directory to checkpoint into.")
        tensors: dict[str, Tensor] = {}
        meta = {"digest": self.digest, "step": self.step, "batches": asdict(self.batches.state),
                "seconds": self.seconds, "config": self.cfg.to_dict(), "hooks": {}}
        for i, (hook, st) in enumerate(self.states.items()):
            prefix = f"h{i}."
            for name, p in st.sae.named_parameters():
                tensors[prefix + "param." + name] = p.detach()
            for name, b in st.sae.named_buffers():
                tensors[prefix + "buffer." + name] = b.detach()
            tensors[prefix + "since_fired"] = st.since_fired
            names = {id(p): n for n, p in st.sae.named_parameters()}
            scalars: dict[str, dict[str, float]] = {}
            for p, pstate in st.optimizer.state.items():
                n = names[id(p)]
                for key, val in pstate.items():
                    if isinstance(val, Tensor) and val.ndim > 0:
                        tensors[f"{prefix}opt.{n}.{key}"] = val
                    else:  # Adam's step count (a 0-d tensor)
                        scalars.setdefault(n, {})[key] = float(val)
            groups = [{k: v for k, v in g.items() if k != "params"} for g in st.optimizer.param_groups]
            meta["hooks"][hook] = {"prefix": prefix, "sae": st.sae.cfg.to_dict(), "scale": st.scale,
                                   "optimizer_scalars": scalars, "optimizer_groups": groups,
                                   "fvu_ema": st.fvu_ema, "l0_ema": st.l0_ema}
        with _io.atomic_dir(self.out / CHECKPOINT_DIR) as tmp:
            _io.write_safetensors(tmp / STATE_FILE, tensors)
            _io.write_json(tmp / META_FILE, meta)
        return self.out / CHECKPOINT_DIR

    def _load_checkpoint(self, ckpt: Path) -> None:
        if not (ckpt / META_FILE).is_file() or not (ckpt / STATE_FILE).is_file():
            raise InterlinguaError(
                f"{ckpt} is incomplete (it lacks {META_FILE if not (ckpt / META_FILE).is_file() else STATE_FILE}; "
                "an older interlingua could leave it so when killed while checkpointing). Pass --overwrite to "
                "start this training afresh in the same directory."
            )
        remedy = "Pass --overwrite to start this training afresh in the same directory."
        meta = _io.load_json(ckpt / META_FILE, remedy)
        if not isinstance(meta, dict) or meta.get("digest") != self.digest:
            raise InterlinguaError(
                f"{self.out} holds a checkpoint of a different training job (other data or settings). Use a "
                "new output directory, or pass --overwrite to start afresh there."
            )
        with _io.open_safetensors(ckpt / STATE_FILE, remedy) as fh:
            tensors = {n: fh.get_tensor(n) for n in fh.keys()}
        for hook, hm in meta["hooks"].items():
            p = hm["prefix"]
            sae = SparseAutoencoder(SAEConfig(**hm["sae"]), device=self.device)
            with torch.no_grad():
                for name, param in sae.named_parameters():
                    param.copy_(tensors[p + "param." + name])
                for name, buf in sae.named_buffers():
                    buf.copy_(tensors[p + "buffer." + name])
            opt = _make_optimizer(sae, self.cfg)
            for group, saved in zip(opt.param_groups, hm["optimizer_groups"]):
                group.update({k: tuple(v) if k == "betas" else v for k, v in saved.items()})
            for name, param in sae.named_parameters():
                stem = f"{p}opt.{name}."
                state = {key[len(stem):]: val.to(self.device).clone() for key, val in tensors.items()
                         if key.startswith(stem)}
                for key, val in hm["optimizer_scalars"].get(name, {}).items():
                    state[key] = torch.tensor(val, dtype=torch.float32, device=self.device)
                if state:
                    opt.state[param] = state
            self.states[hook] = HookState(sae=sae, optimizer=opt, scale=hm["scale"],
                                          since_fired=tensors[p + "since_fired"].to(self.device).clone(),
                                          fvu_ema=hm["fvu_ema"], l0_ema=hm["l0_ema"])
        self.step = meta["step"]
        self.seconds = meta.get("seconds", 0.0)
        self.batches.state = BatchState(**meta["batches"])
        self.resumed_from = self.step


def _dir_name(hook: str) -> str:
    return hook.replace("/", "_")


def train_sae(source: Source, cfg: TrainConfig | None = None, out: str | Path | None = None, *,
              progress: bool = False, overwrite: bool = False, provenance: dict | None = None,
              device: str | torch.device = "cpu") -> TrainResult:
    """Train SAEs on every hook of ``source`` (see :class:`Trainer`); ``out`` enables checkpoints and export."""
    trainer = Trainer(source, cfg or TrainConfig(), out, overwrite=overwrite, provenance=provenance, device=device)
    return trainer.run(progress=progress)
