"""UniMP: one multimodal, multi-task personalization model (Wei et al., ICLR 2024).

A user's history becomes a user sentence (:mod:`.serialize`), posters become
visual tokens (:mod:`.visual`, :mod:`.resampler`) that a causal LM reads through
item-masked gated cross-attention (:mod:`.cross_attention`, :mod:`.backbone`,
:mod:`.model`); tasks are instructions answered by next-token prediction
(:mod:`.tasks`, :mod:`.loss`), trained jointly (:mod:`.training`), answered with
constrained decoding (:mod:`.constrained`) and measured by :mod:`.evaluate`,
:mod:`.explanation` and :mod:`.search`; :mod:`.item_table` starts the retrieval
head's item table from a quick BPR; :mod:`.transfer` moves a trained model onto a
new catalog.
torch and transformers load with the submodules, not with this package.
"""
