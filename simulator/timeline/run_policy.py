"""The memory policy of a run in one short text: its recompute policy and its offload policy.

Why here: ``compare`` names its runs ``1f1b [full + offload selective]`` and the comparison's
table and figure read the same words back from the Timeline's meta, so both sides use this one
rule.
"""

from __future__ import annotations


def policy_text(recompute: str | None, offload: str | None) -> str:
    """``none``, ``full`` (recompute only), ``offload full`` (offload only) or
    ``full + offload full`` (both); ``none`` policies are left out."""
    recompute = "" if recompute in (None, "", "none") else recompute
    offload = "" if offload in (None, "", "none") else f"offload {offload}"
    return " + ".join(p for p in (recompute, offload) if p) or "none"
