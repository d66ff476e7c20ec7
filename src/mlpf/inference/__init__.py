"""Inference: a trained checkpoint over parsed shards (`infer`), the ONNX export (`export`) and their commands
(`cli`). Above the model, training's checkpoints read through mlpf.runtime."""
