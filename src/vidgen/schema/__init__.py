"""The typed schema of the composed config, checked once at start-up (`vidgen.config.load_config`),
before any file is written: every key's type and range, and no key vidgen does not read.

  base.py     Section: a strict, closed pydantic model; field descriptions double as the fix
  core.py     run, objective, train, sample, backbone, logger, trainer and the root, VidgenConfig
  groups.py   data, optim, schedule, strategy: one section per option (GROUP_SECTIONS)
  methods.py  one section per method (METHOD_SECTIONS); adding a method = one class + one entry
  trainer.py  which Lightning Trainer arguments `trainer.*` passes through, and what to use instead
  check.py    validate_config and the messages (key, value, fix; "did you mean ...?")

Adding a method: a `Section` subclass with `name: Literal["<method>"]` and one field per key of
conf/method/<method>.yaml, registered in `methods.METHOD_SECTIONS` (see methods.py). Adding a key
anywhere: a field in its section, its `description` saying which values are valid.
"""

from vidgen.schema.check import known_keys, override_error, unknown_key_message, validate_config

__all__ = ["known_keys", "override_error", "unknown_key_message", "validate_config"]
