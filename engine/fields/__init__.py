"""Method models, one module each (fields, their sampling recipe, losses); engine/methods names them."""
