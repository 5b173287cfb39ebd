"""The Hydra configs shipped with nlpseq (a package so that Hydra finds them as ``pkg://nlpseq.conf``)."""
