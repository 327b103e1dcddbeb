"""Reports: a sweep's runs joined to its paper table, rendered beside the paper's numbers.

    vidgen report SWEEP [--runs DIR | --wandb ENTITY/PROJECT|DIR] [--format md,tex,html,json] [--out DIR]

collect.py (local folders, W&B offline files, W&B API; each run's scale) -> table.py (rows,
mean ± std, best, reasons: the cell values) -> render.py (`view()` strings, laid out by the Jinja2
templates in templates/: Markdown, LaTeX, self-contained HTML with embedded PNGs).
"""
