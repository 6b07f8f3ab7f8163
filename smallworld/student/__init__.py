"""The student: hashed byte n-gram and token features, a linear softmax model trained on soft targets,
a documented model file (JSON + raw float arrays, no pickle) and a fused numba scoring kernel."""
