"""The image modality's behaviour (pipeline.py, loaded by name through ``load_modality``): this folder is a DVC dep
of the stages only when the ``modality`` param is ``image``."""
