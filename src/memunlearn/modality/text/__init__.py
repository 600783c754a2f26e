"""The text modality (first-epoch gradient ascent): a corpus of ``TEXT_CORPORA`` cut into fixed-length sequences with planted
canaries, a language model of ``LM_MODELS``. Its behaviour is pipeline.py (loaded by name through
``load_modality``); this folder is a DVC dep of the stages only when the ``modality`` param is ``text``. What
applies to it is modality/applies.py. The summary stage needs nothing of it: the evaluate and memorize stages
write the headline's keys (forget/retain/test accuracy as next-token accuracy; the canaries as the planted
examples).
"""
