//! `hearth models import`: converting safetensors models to GGUF.
