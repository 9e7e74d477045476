"""The papers' claims that ``docs/claims.md`` tests: one data file per paper
(``<name>.toml``: each claim's wording, the paper's number and its source, which runs it
compares, the rule by name), the verdict engine (:mod:`.engine`), a paper's own rules where
its logic is not data (``<name>.py``), and the page (:mod:`.page`). Records alone: like the
report, nothing here imports the registry, the methods or torch.
"""
