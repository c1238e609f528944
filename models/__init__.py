"""What a user's process loads: the reader, the summarizer, the engine that holds them."""
from models.cpu_features import apply_cpu_override

apply_cpu_override()   # ARTICLE_QA_CPU=avx2 holds torch's kernels to AVX2 before torch runs
