"""What a regression mean network predicts (a card's ``parameterization``), without torch: model cards are checked
(``model_files.precheck_model``) before torch is imported.

- ``image``: the target image itself;
- ``enhancement``: the target minus the T1-pre;
- ``relative``: the enhancement relative to the T1-pre.
"""

PARAMETERIZATIONS = ("image", "enhancement", "relative")
