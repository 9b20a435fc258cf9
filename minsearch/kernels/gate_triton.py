"""Fused Triton kernels of the adaptive gating unit (:mod:`minsearch.layers.agu`).

Two ops, each a forward and a backward kernel behind a ``torch.autograd.Function``:

- squash ``u = w ⊙ tanh(α·x) + b`` (α one scalar; w, b per channel);
- gated add ``y = x + g ⊙ h`` with a rank-1 gate ``g[m, c] = g_c[c] · g_r[m]``: ``g_c`` is one
  value (scalar gate) or one per channel, ``g_r`` one per position or absent. The
  input-dependent gate ``g0 ⊙ (1 + tanh(x·v))`` is this form with ``g_r = 1 + tanh(x·v)``,
  computed by torch beforehand (a mat-vec, O(M) output): only the add is fused, and autograd
  carries the kernel's ``dg_r`` on into ``v`` and ``x``.

Layout: a tensor is viewed as (N, C, S) around its channel axis — channels-last (..., C) is
S = 1, channels-first (N, C, H, W) is S = H*W. Position m in [0, N*S) lives at
``(m // S)*C*S + m % S`` and channel c adds ``c*S``, so both layouts are read in place, with no
permute copies. Triton specializes an integer argument equal to 1, so for channels-last the
address compiles to ``m*C + c``; a channels-first tensor stored ``channels_last`` runs as its
(..., C) view. Tile shapes follow the contiguous axis (wide in C for
channels-last, tall in m for channels-first); they are not tuned on a GPU.

Backward reductions (dw, db, dα, dg) are two-stage and deterministic, as in Triton's LayerNorm
tutorial: a (P, channel-blocks) grid, each program walking its own rows and accumulating in
fp32 registers, writes one partial row; torch sums the P partials (P*C values, small).

Memory: the squash saves only ``x`` — which the residual keeps alive anyway — and recomputes
tanh in the backward; the gated add saves ``h`` (and ``g_r``). Arithmetic is fp32 whatever the
storage dtype; outputs take the dtype torch's type promotion gives the reference expression.

tanh is exp-based (:func:`_tanh`): libdevice's tanh does not run in the interpreter, and one
formula means the code tested on CPU under ``TRITON_INTERPRET=1`` is the code a GPU runs.
Import this module explicitly: it imports triton, which ``import minsearch`` must not.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from minsearch.errors import UserError


@triton.jit
def _tanh(z):
    """tanh in fp32: a Taylor polynomial below |z| = 0.2 (where 1 - e^{-2|z|} would cancel;
    the first dropped term is < 2e-10), ``(1 - e) / (1 + e)`` with ``e = e^{-2|z|}`` above."""
    a = tl.abs(z)
    e = tl.exp(-2.0 * a)
    big = (1.0 - e) / (1.0 + e)
    a2 = a * a
    small = a * (1.0 + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0
                                                                + a2 * (62.0 / 2835.0)))))
    t = tl.where(a < 0.2, small, big)
    return tl.where(z < 0, -t, t)


@triton.jit
def _tile(pid_m, pid_c, M, C, S, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    """Rows (BLOCK_M,), channels (BLOCK_C,), element offsets and mask (BLOCK_M, BLOCK_C)."""
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    r64 = rows.to(tl.int64)  # N*C*S may pass 2**31
    off = ((r64 // S) * C * S + r64 % S)[:, None] + cols.to(tl.int64)[None, :] * S
    mask = (rows < M)[:, None] & (cols < C)[None, :]
    return rows, cols, off, mask


@triton.jit
def _squash_fwd(X, A, W, B, U, M, C, S, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    rows, cols, off, mask = _tile(tl.program_id(0), tl.program_id(1), M, C, S, BLOCK_M, BLOCK_C)
    x = tl.load(X + off, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(A).to(tl.float32)
    w = tl.load(W + cols, mask=cols < C, other=0.0).to(tl.float32)
    b = tl.load(B + cols, mask=cols < C, other=0.0).to(tl.float32)
    u = w[None, :] * _tanh(a * x) + b[None, :]
    tl.store(U + off, u.to(U.dtype.element_ty), mask=mask)


@triton.jit
def _squash_bwd(X, A, W, DU, DX, DW_P, DB_P, DA_P, M, C, S, ROWS_PER_PROG,
                BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    p, pid_c = tl.program_id(0), tl.program_id(1)
    a = tl.load(A).to(tl.float32)
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    w = tl.load(W + cols, mask=cols < C, other=0.0).to(tl.float32)
    acc_w = tl.zeros([BLOCK_C], tl.float32)
    acc_b = tl.zeros([BLOCK_C], tl.float32)
    acc_a = tl.zeros([BLOCK_C], tl.float32)
    first = p * (ROWS_PER_PROG // BLOCK_M)  # ROWS_PER_PROG is a multiple of BLOCK_M
    for i in range(0, ROWS_PER_PROG // BLOCK_M):
        _, _, off, mask = _tile(first + i, pid_c, M, C, S, BLOCK_M, BLOCK_C)
        x = tl.load(X + off, mask=mask, other=0.0).to(tl.float32)
        du = tl.load(DU + off, mask=mask, other=0.0).to(tl.float32)
        t = _tanh(a * x)
        dz = du * w[None, :] * (1.0 - t * t)  # dL/d(α·x)
        tl.store(DX + off, (dz * a).to(DX.dtype.element_ty), mask=mask)
        acc_w += tl.sum(du * t, 0)
        acc_b += tl.sum(du, 0)
        acc_a += tl.sum(dz * x, 0)
    out = p * C + cols
    tl.store(DW_P + out, acc_w, mask=cols < C)
    tl.store(DB_P + out, acc_b, mask=cols < C)
    tl.store(DA_P + out, acc_a, mask=cols < C)


@triton.jit
def _gate(GC, GR, rows, cols, M, C, PER_CHANNEL: tl.constexpr, HAS_ROW: tl.constexpr):
    """The gate tile g[m, c] = g_c[c] * g_r[m], fp32, broadcastable to (BLOCK_M, BLOCK_C)."""
    if PER_CHANNEL:
        g = tl.load(GC + cols, mask=cols < C, other=0.0).to(tl.float32)[None, :]
    else:
        g = tl.load(GC + cols * 0).to(tl.float32)[None, :]  # one value, broadcast
    if HAS_ROW:
        g = g * tl.load(GR + rows, mask=rows < M, other=0.0).to(tl.float32)[:, None]
    return g


@triton.jit
def _gadd_fwd(X, H, GC, GR, Y, M, C, S, PER_CHANNEL: tl.constexpr, HAS_ROW: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    rows, cols, off, mask = _tile(tl.program_id(0), tl.program_id(1), M, C, S, BLOCK_M, BLOCK_C)
    x = tl.load(X + off, mask=mask, other=0.0).to(tl.float32)
    h = tl.load(H + off, mask=mask, other=0.0).to(tl.float32)
    g = _gate(GC, GR, rows, cols, M, C, PER_CHANNEL, HAS_ROW)
    tl.store(Y + off, (x + g * h).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _gadd_bwd(DY, H, GC, GR, DH, DGC_P, DGR_P, M, C, S, ROWS_PER_PROG,
              PER_CHANNEL: tl.constexpr, HAS_ROW: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    p, pid_c = tl.program_id(0), tl.program_id(1)
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    acc_c = tl.zeros([BLOCK_C], tl.float32)
    first = p * (ROWS_PER_PROG // BLOCK_M)
    for i in range(0, ROWS_PER_PROG // BLOCK_M):
        rows, _, off, mask = _tile(first + i, pid_c, M, C, S, BLOCK_M, BLOCK_C)
        dy = tl.load(DY + off, mask=mask, other=0.0).to(tl.float32)
        h = tl.load(H + off, mask=mask, other=0.0).to(tl.float32)
        g = _gate(GC, GR, rows, cols, M, C, PER_CHANNEL, HAS_ROW)
        tl.store(DH + off, (g * dy).to(DH.dtype.element_ty), mask=mask)
        dyh = dy * h
        if HAS_ROW:
            gr = tl.load(GR + rows, mask=rows < M, other=0.0).to(tl.float32)
            acc_c += tl.sum(dyh * gr[:, None], 0)
            gc = _gate(GC, GR, rows, cols, M, C, PER_CHANNEL, False)
            # dg_r partial over this channel block: (BLOCK_M,) at row (pid_c, m)
            tl.store(DGR_P + pid_c * M + rows, tl.sum(dyh * gc, 1), mask=rows < M)
        else:
            acc_c += tl.sum(dyh, 0)
    tl.store(DGC_P + p * C + cols, acc_c, mask=cols < C)


def _layout(x: torch.Tensor, channel_dim: int) -> tuple[int, int, int]:
    """(M, C, S): positions, channels and the stride of the channel axis in elements."""
    cd = channel_dim % x.dim()
    c = x.shape[cd]
    s = math.prod(x.shape[cd + 1:])
    return x.numel() // max(c, 1), c, s


def _blocks(m: int, c: int, s: int, block_m: int | None, block_c: int | None) -> tuple[int, int]:
    """Tiles of ~4096 elements, wide in C when C is contiguous (S == 1), tall in m otherwise."""
    if block_c is None:
        block_c = min(triton.next_power_of_2(c), 256 if s == 1 else 16)
    if block_m is None:
        block_m = min(max(4096 // block_c, 1), triton.next_power_of_2(m))
    return block_m, block_c


def _row_split(m: int, block_m: int, n_cblocks: int, sms: int | None,
               programs: int | None = None) -> tuple[int, int]:
    """(P, rows per program) for a backward grid of (P, n_cblocks): a whole number of BLOCK_M
    tiles per program; on a GPU of ``sms`` SMs up to 4 programs per SM, but at least 8 tiles
    each, so the P x C partial sums stay a few percent of the activation traffic. With
    ``sms=None`` (the interpreter runs programs one by one) P is 2."""
    tiles = triton.cdiv(m, block_m)
    if programs is None:
        programs = 2 if sms is None else max(1, min(4 * sms // n_cblocks, tiles // 8))
    per = triton.cdiv(tiles, min(programs, tiles)) * block_m
    return triton.cdiv(m, per), per


def _sms(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).multi_processor_count


def _check_device(*tensors: torch.Tensor) -> None:
    interpreted = type(_squash_fwd).__name__ == "InterpretedFunction"
    for t in tensors:
        if t.device.type != "cuda" and not interpreted:
            raise UserError(f"The Triton gate kernels run on CUDA tensors, or on CPU when "
                            f"TRITON_INTERPRET=1 was set before {__name__} was imported; got "
                            f"a tensor on {t.device}. Use kernel='torch' (or 'auto').")


class _Squash(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, weight, bias, channel_dim, blocks):
        _check_device(x, alpha, weight, bias)
        x = x.contiguous()
        m, c, s = _layout(x, channel_dim)
        block_m, block_c = _blocks(m, c, s, *blocks[:2])
        t_dtype = torch.result_type(alpha, x)  # alpha is 0-dim: x's dtype wins, as in torch
        dtype = torch.promote_types(torch.promote_types(weight.dtype, t_dtype), bias.dtype)
        u = torch.empty(x.shape, dtype=dtype, device=x.device)
        grid = (triton.cdiv(m, block_m), triton.cdiv(c, block_c))
        _squash_fwd[grid](x, alpha, weight, bias, u, m, c, s, BLOCK_M=block_m, BLOCK_C=block_c)
        ctx.save_for_backward(x, alpha, weight)
        ctx.dims = (channel_dim, block_m, block_c, blocks[2])
        return u

    @staticmethod
    def backward(ctx, du):
        x, alpha, weight = ctx.saved_tensors
        channel_dim, block_m, block_c, programs = ctx.dims
        du = du.contiguous()
        m, c, s = _layout(x, channel_dim)
        n_cblocks = triton.cdiv(c, block_c)
        p, per = _row_split(m, block_m, n_cblocks, _sms(x.device), programs)
        dx = torch.empty_like(x)
        parts = torch.empty(3, p, c, dtype=torch.float32, device=x.device)  # dw, db, dα
        _squash_bwd[(p, n_cblocks)](x, alpha, weight, du, dx, parts[0], parts[1], parts[2],
                                    m, c, s, per, BLOCK_M=block_m, BLOCK_C=block_c)
        dw, db = parts[0].sum(0).to(weight.dtype), parts[1].sum(0).to(weight.dtype)
        da = parts[2].sum().to(alpha.dtype).reshape(alpha.shape)
        return dx, da, dw, db, None, None


class _GatedAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h, g, g_row, channel_dim, blocks):
        _check_device(x, h, g)
        x, h = x.contiguous(), h.contiguous()
        m, c, s = _layout(x, channel_dim)
        per_channel = g.numel() > 1
        if g_row is not None:
            g_row = g_row.contiguous()  # (N, *spatial) or (...): position m = flat index
            gh_dtype = torch.promote_types(torch.promote_types(g.dtype, g_row.dtype), h.dtype)
        else:
            gh_dtype = torch.result_type(g, h)  # a 0-dim scalar gate takes h's dtype
        y = torch.empty(x.shape, dtype=torch.promote_types(x.dtype, gh_dtype), device=x.device)
        block_m, block_c = _blocks(m, c, s, *blocks[:2])
        grid = (triton.cdiv(m, block_m), triton.cdiv(c, block_c))
        _gadd_fwd[grid](x, h, g, g if g_row is None else g_row, y, m, c, s,
                        PER_CHANNEL=per_channel, HAS_ROW=g_row is not None,
                        BLOCK_M=block_m, BLOCK_C=block_c)
        ctx.save_for_backward(h, g, g_row)
        ctx.dims = (channel_dim, block_m, block_c, blocks[2], per_channel, x.dtype)
        return y

    @staticmethod
    def backward(ctx, dy):
        h, g, g_row = ctx.saved_tensors
        channel_dim, block_m, block_c, programs, per_channel, x_dtype = ctx.dims
        dy = dy.contiguous()
        m, c, s = _layout(h, channel_dim)
        n_cblocks = triton.cdiv(c, block_c)
        p, per = _row_split(m, block_m, n_cblocks, _sms(h.device), programs)
        dh = torch.empty_like(h)
        dgc = torch.empty(p, c, dtype=torch.float32, device=h.device)
        dgr = torch.empty(n_cblocks if g_row is not None else 1, m if g_row is not None else 1,
                          dtype=torch.float32, device=h.device)
        _gadd_bwd[(p, n_cblocks)](dy, h, g, g if g_row is None else g_row, dh, dgc, dgr,
                                  m, c, s, per, PER_CHANNEL=per_channel,
                                  HAS_ROW=g_row is not None, BLOCK_M=block_m, BLOCK_C=block_c)
        dg = (dgc.sum(0) if per_channel else dgc.sum()).to(g.dtype).reshape(g.shape)
        d_row = None
        if g_row is not None:
            d_row = dgr.sum(0).to(g_row.dtype).reshape(g_row.shape)
        return dy.to(x_dtype), dh, dg, d_row, None, None


def _channels_last(x: torch.Tensor, channel_dim: int) -> bool:
    """A channels-first tensor stored channels-last (``torch.channels_last`` maps): the kernels
    then run on its (..., C) view, which is contiguous, instead of copying it to (N, C, S)."""
    cd = channel_dim % x.dim()
    return cd != x.dim() - 1 and not x.is_contiguous() and x.movedim(cd, -1).is_contiguous()


def squash(x: torch.Tensor, alpha: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
           channel_dim: int = -1, *, block_m: int | None = None, block_c: int | None = None,
           programs: int | None = None) -> torch.Tensor:
    """Fused ``weight ⊙ tanh(alpha·x) + bias`` on ``channel_dim``; differentiable in all four.

    ``alpha``: 0-dim; ``weight``, ``bias``: (C,). ``block_m``/``block_c``/``programs`` override
    the tiling (tests use them to reach several blocks with tiny tensors)."""
    blocks = (block_m, block_c, programs)
    if _channels_last(x, channel_dim):
        u = _Squash.apply(x.movedim(channel_dim, -1), alpha, weight, bias, -1, blocks)
        return u.movedim(-1, channel_dim)
    return _Squash.apply(x, alpha, weight, bias, channel_dim, blocks)


def gated_add(x: torch.Tensor, h: torch.Tensor, g: torch.Tensor,
              g_row: torch.Tensor | None = None, channel_dim: int = -1, *,
              block_m: int | None = None, block_c: int | None = None,
              programs: int | None = None) -> torch.Tensor:
    """Fused ``x + g ⊙ h`` with the gate ``g_c[c] · g_r[m]``; differentiable in all inputs.

    ``x``, ``h``: the same shape; ``g``: 0-dim or (1,) (one gate) or (C,) (per channel);
    ``g_row``: None or one value per position, shaped like ``x`` without its channel axis."""
    if x.shape != h.shape:
        raise ValueError(f"gated_add needs `x` and `h` of one shape (no broadcasting), but got "
                         f"{tuple(x.shape)} and {tuple(h.shape)}; expand them first.")
    m, c, _ = _layout(x, channel_dim)
    if g.numel() not in (1, c):
        raise ValueError(f"The gate must hold 1 or C={c} values, but got shape {tuple(g.shape)}.")
    if g_row is not None and g_row.numel() != m:
        raise ValueError(f"`g_row` must hold one value per position ({m}), but got shape "
                         f"{tuple(g_row.shape)}.")
    blocks = (block_m, block_c, programs)
    if _channels_last(x, channel_dim):  # positions keep their order: g_row needs no change
        y = _GatedAdd.apply(x.movedim(channel_dim, -1), h.movedim(channel_dim, -1), g, g_row, -1,
                            blocks)
        return y.movedim(-1, channel_dim)
    return _GatedAdd.apply(x, h, g, g_row, channel_dim, blocks)
