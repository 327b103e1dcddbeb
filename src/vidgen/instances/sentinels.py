"""SAUG's empty instance prompts: one distinct ``<extra_id_k>`` sentinel per instance (InstanceV Sec. 4.3, 10.4).

How many sentinels a tokenizer has depends on its revision (umT5: 300 in t5x's vocabulary,
384 in another published revision), so the count is read from the tokenizer, never assumed.
"""

from __future__ import annotations

import re

from vidgen.errors import ConfigError

_SENTINEL = re.compile(r"^<extra_id_(\d+)>$")


def sentinel_prompts(n: int) -> list[str]:
    """["<extra_id_0>", ..., "<extra_id_{n-1}>"]: the empty prompt of instance k is sentinel k."""
    return [f"<extra_id_{k}>" for k in range(n)]


def sentinel_count(tokenizer) -> int:
    """Number of consecutive ``<extra_id_k>`` tokens (k = 0, 1, ...) in a Hugging Face tokenizer's vocabulary."""
    ids = {int(m.group(1)) for tok in tokenizer.get_vocab() if (m := _SENTINEL.match(tok))}
    n = 0
    while n in ids:
        n += 1
    return n


def check_sentinels(tokenizer, needed: int, where: str) -> None:
    """Fail clearly when the tokenizer has fewer sentinels than the maximum instance count."""
    have = sentinel_count(tokenizer)
    if have < needed:
        raise ConfigError(
            f"{where}: the tokenizer has {have} <extra_id_N> sentinel tokens but method.max_instances={needed} "
            f"instances each need a distinct one (SAUG, InstanceV Sec. 4.3). Fix: lower method.max_instances "
            f"to {have} or use a tokenizer revision with at least {needed} sentinels"
        )
