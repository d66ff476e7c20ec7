"""Training: the loop with checkpoints and exact resume (`loop`), its validation metrics (`metrics`) and
`mlpf train` (`cli`). Above the model and the runtime helpers; nothing below imports it."""
