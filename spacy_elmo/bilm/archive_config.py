"""How an AllenNLP config describes a transformer biLM: the config read into TransformerOptions and
written back from them. Plain dicts, no torch."""
from __future__ import annotations

import copy
from typing import Any, Dict, Tuple

from ..errors import OptionsError
from .char_ids import N_CHARACTERS
from .options import TransformerOptions, whole_filters

CONFIG_NAME = "config.json"
BIDIRECTIONAL_TYPES = ("bidirectional-language-model", "bidirectional_language_model")
CONTEXTUALIZER_TYPE = "bidirectional_language_model_transformer"
EMBEDDER_NAME = "token_characters"
ALLENNLP_HEADS = 8


def _get(section: Dict[str, Any], key: str, source: str, where: str, default: Any = ...) -> Any:
    if key in section:
        return section[key]
    if default is ...:
        raise OptionsError(f"{source}: missing key '{where}.{key}'")
    return default


def _section(section: Dict[str, Any], key: str, source: str, where: str) -> Dict[str, Any]:
    value = _get(section, key, source, where)
    if not isinstance(value, dict):
        raise OptionsError(f"{source}: '{where}.{key}' must be an object")
    return value


def options_from_config(config: Dict[str, Any], source: str) -> Tuple[TransformerOptions, str]:
    """The architecture described by an AllenNLP config, and the name of its character embedder.

    Both spellings of a bidirectional LM are read (`language_model` with `bidirectional: true`, and
    the older `bidirectional-language-model`); an empty `tokens` embedder may sit beside the characters.
    """
    model = _section(config, "model", source, "config")
    model_type = model.get("type")
    if model_type == "language_model":
        if model.get("bidirectional") is not True:
            raise OptionsError(f"{source}: a forward-only language model (model.bidirectional is not true); "
                               "ELMo needs a bidirectional one")
    elif model_type not in BIDIRECTIONAL_TYPES:
        raise OptionsError(f"{source}: model type {model_type!r} is not a bidirectional language model "
                           f"(expected 'language_model' with bidirectional: true, or {BIDIRECTIONAL_TYPES[0]!r})")
    field_embedder = _section(model, "text_field_embedder", source, "model")
    if "embedder_to_indexer_map" in field_embedder:
        raise OptionsError(f"{source}: model.text_field_embedder.embedder_to_indexer_map is not supported")
    embedders = field_embedder.get("token_embedders", {k: v for k, v in field_embedder.items()
                                                       if k != "allow_unmatched_keys"})
    if not isinstance(embedders, dict):
        raise OptionsError(f"{source}: model.text_field_embedder.token_embedders must be an object")
    used = {name: e for name, e in embedders.items() if not (isinstance(e, dict) and e.get("type") == "empty")}
    if len(used) != 1:
        raise OptionsError(f"{source}: expected one character embedder in model.text_field_embedder "
                           f"(besides empty ones), found {sorted(used)}")
    name, embedder = next(iter(used.items()))
    where = f"model.text_field_embedder.{name}"
    if not isinstance(embedder, dict) or embedder.get("type") != "character_encoding":
        raise OptionsError(f"{source}: {where} must be a 'character_encoding' embedder, found "
                           f"{embedder.get('type') if isinstance(embedder, dict) else embedder!r}")
    _check_indexer(config, name, source)
    embedding = _section(embedder, "embedding", source, where)
    encoder = _section(embedder, "encoder", source, where)
    if encoder.get("type") != "cnn-highway":
        raise OptionsError(f"{source}: {where}.encoder type {encoder.get('type')!r} is not supported "
                           "(expected 'cnn-highway')")
    n_chars = embedding.get("num_embeddings", N_CHARACTERS)
    if n_chars != N_CHARACTERS:
        raise OptionsError(f"{source}: {where}.embedding.num_embeddings must be {N_CHARACTERS} (ELMo characters), "
                           f"found {n_chars!r}")
    location = encoder.get("projection_location", "after_highway")
    if location != "after_highway":
        raise OptionsError(f"{source}: {where}.encoder.projection_location {location!r} is not supported "
                           "(expected 'after_highway')")
    char_dim = _get(embedding, "embedding_dim", source, f"{where}.embedding")
    if encoder.get("embedding_dim", char_dim) != char_dim:
        raise OptionsError(f"{source}: {where}.encoder.embedding_dim ({encoder['embedding_dim']}) differs from "
                           f"{where}.embedding.embedding_dim ({char_dim})")
    context = _section(model, "contextualizer", source, "model")
    if context.get("type") != CONTEXTUALIZER_TYPE:
        raise OptionsError(f"{source}: model.contextualizer type {context.get('type')!r} is not supported "
                           f"(expected {CONTEXTUALIZER_TYPE!r})")
    input_dim = _get(context, "input_dim", source, "model.contextualizer")
    projection_dim = _get(encoder, "projection_dim", source, f"{where}.encoder")
    if projection_dim != input_dim:
        raise OptionsError(f"{source}: {where}.encoder.projection_dim ({projection_dim}) must equal "
                           f"model.contextualizer.input_dim ({input_dim})")
    filters = whole_filters(_get(encoder, "filters", source, f"{where}.encoder"), f"{source}: {where}.encoder.filters")
    try:
        options = TransformerOptions(
            input_dim=input_dim, hidden_dim=_get(context, "hidden_dim", source, "model.contextualizer"),
            n_layers=_get(context, "num_layers", source, "model.contextualizer"), filters=filters,
            char_embedding_dim=char_dim, n_highway=_get(encoder, "num_highway", source, f"{where}.encoder"),
            n_heads=ALLENNLP_HEADS, activation=encoder.get("activation", "relu"),
            layer_norm=bool(encoder.get("do_layer_norm", False)), extra=copy.deepcopy(config))
    except OptionsError as err:
        raise OptionsError(f"{source}: {err}") from None
    return options, name


def _check_indexer(config: Dict[str, Any], name: str, source: str) -> None:
    """The characters must have been indexed as ELMo's (byte ids + 1), the ids spacy-elmo makes."""
    reader = config.get("dataset_reader")
    if isinstance(reader, dict) and reader.get("type") == "multiprocess":
        reader = reader.get("base_reader")
    indexers = reader.get("token_indexers") if isinstance(reader, dict) else None
    indexer = indexers.get(name) if isinstance(indexers, dict) else None
    if isinstance(indexer, dict) and indexer.get("type") != "elmo_characters":
        raise OptionsError(f"{source}: dataset_reader.token_indexers.{name} has type {indexer.get('type')!r}; "
                           "only 'elmo_characters' ids are supported")


def config_from_options(options: TransformerOptions) -> Dict[str, Any]:
    """An AllenNLP config for `options`: the loaded archive's config with its architecture replaced,
    or a minimal language_model config."""
    if options.n_heads != ALLENNLP_HEADS:
        raise OptionsError(f"AllenNLP's transformer biLM has {ALLENNLP_HEADS} attention heads; a model with "
                           f"n_heads={options.n_heads} cannot be written as an AllenNLP archive")
    config = copy.deepcopy(options.extra) if "model" in options.extra else {
        "dataset_reader": {"type": "simple_language_modeling", "tokenizer": {"type": "just_spaces"},
                           "token_indexers": {"tokens": {"type": "single_id"},
                                              EMBEDDER_NAME: {"type": "elmo_characters"}},
                           "start_tokens": ["<S>"], "end_tokens": ["</S>"]},
        "model": {},
    }
    model = config["model"]
    embedders = model.get("text_field_embedder", {}).get("token_embedders", {})
    name = next((k for k, v in embedders.items() if not (isinstance(v, dict) and v.get("type") == "empty")),
                EMBEDDER_NAME)
    model.update({
        "type": "language_model",
        "bidirectional": True,
        "text_field_embedder": {"token_embedders": {
            name: {"type": "character_encoding",
                   "embedding": {"num_embeddings": N_CHARACTERS, "embedding_dim": options.char_embedding_dim},
                   "encoder": {"type": "cnn-highway", "activation": options.activation,
                               "embedding_dim": options.char_embedding_dim,
                               "filters": [list(f) for f in options.filters], "num_highway": options.n_highway,
                               "projection_dim": options.input_dim, "projection_location": "after_highway",
                               "do_layer_norm": options.layer_norm}},
            "tokens": {"type": "empty"}}},
        "contextualizer": {**model.get("contextualizer", {}), "type": CONTEXTUALIZER_TYPE,
                           "input_dim": options.input_dim, "hidden_dim": options.hidden_dim,
                           "num_layers": options.n_layers},
    })
    model["contextualizer"].pop("return_all_layers", None)
    return config
