"""The spaCy side: the `elmo` component, its Thinc model, listeners and vector hooks."""
