"""The published ELMo biLMs, by name.

Every address is one that the AllenNLP ELMo page (https://allennlp.org/elmo) links to; each entry's
`sources` says where it was read, so an address can be checked rather than trusted. No size or
checksum is published for any of these files, so none is recorded: a download is checked against the
server's Content-Length, by loading it with the strict options/weights (or archive) check, and against
the sizes recorded here (lstm_dim, projection_dim, n_highway), so that a server offering another valid
model under a name is refused; the manifest then records each file's sha256, which loading checks.
An entry names its biLM kind (bilm/kinds.py) and has one published file per file of that kind, or else
is shipped inside the package (the bundled model, `default`: nothing to download).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..bilm.kinds import LSTM, TRANSFORMER, Kind
from ..errors import UnknownModelError

DEFAULT_NAME = "default"
"""The model used when none is named: the one bundled in the package."""
BUNDLED_DIR = Path(__file__).parent.parent / "models" / "default"

ELMO_PAGE = ("https://allennlp.org/elmo, whose source is elmo.html in github.com/allenai/allennlp-website "
             "(read at commit 8aa2a955ce68394b545cc19464f707cb3a10b4bd, 2020-12-23)")
FLAIR = ("github.com/flairNLP/flair, flair/embeddings/legacy.py, ELMoEmbeddings "
         "(read at commit d4ea3777998ba67bfbe6b6b8359e024dcf673c3e)")
S3_MODELS = "https://s3-us-west-2.amazonaws.com/allennlp/models"
S3 = f"{S3_MODELS}/elmo"
NO_LICENCE = "no licence is stated with the files or on the ELMo page"
AI2_LICENCE = f"{NO_LICENCE}; released by AI2 with AllenNLP and bilm-tf, whose code is Apache-2.0"


@dataclass(frozen=True)
class RemoteFile:
    url: str
    size: Optional[int] = None
    sha256: Optional[str] = None


@dataclass(frozen=True)
class PublishedModel:
    """One catalogue entry: a biLM of `kind`, published as `remotes` (one per file of the kind, in the
    order of `kind.files`), or else shipped in the package's `folder`. Architecture fields are None where
    the publisher does not state them; `projection_dim` is the width of each direction's contextual
    layers (the LSTM projection, or a transformer's input_dim)."""

    name: str
    title: str
    kind: Kind
    remotes: Tuple[RemoteFile, ...]
    language: str
    training_data: str
    licence: str
    sources: Tuple[str, ...]
    params_millions: Optional[float] = None
    lstm_dim: Optional[int] = None
    projection_dim: Optional[int] = None
    n_highway: Optional[int] = None
    folder: Optional[Path] = None

    def __post_init__(self) -> None:
        published = len(self.remotes) == len(self.kind.files) and self.folder is None
        if not (published or (not self.remotes and self.folder is not None)):
            raise ValueError(f"catalogue entry {self.name!r}: give one remote file for each of "
                             f"{', '.join(self.kind.files)}, or else the folder it is bundled in")

    @property
    def output_dim(self) -> Optional[int]:
        """Width of an ELMo vector: forward and backward projections side by side."""
        return None if self.projection_dim is None else 2 * self.projection_dim

    @property
    def approx_weights_bytes(self) -> Optional[int]:
        """float32 parameters, an estimate of the weight file's size where no size is published."""
        return None if self.params_millions is None else int(self.params_millions * 4e6)


def _pair(folder: str, options: str, weights: str) -> Tuple[RemoteFile, ...]:
    return RemoteFile(f"{folder}/{options}"), RemoteFile(f"{folder}/{weights}")


def _english(name: str, title: str, tag: str, params: float, lstm: int, proj: int, highway: int,
             data: str) -> PublishedModel:
    options, weights = _pair(f"{S3}/{tag}", f"elmo_{tag}_options.json", f"elmo_{tag}_weights.hdf5")
    return PublishedModel(name, title, LSTM, (options, weights), "en", data, AI2_LICENCE, (ELMO_PAGE, FLAIR),
                          params, lstm, proj, highway)


BILLION_WORDS = "1 Billion Word Benchmark: about 800M tokens of WMT 2011 news crawl"
TRANSFORMER_TUTORIAL = (
    "github.com/allenai/allennlp, tutorials/how_to/training_transformer_elmo.md (read at commit "
    "ffc4a6d3588bcf80d9c0a9e4366feb9e096398bf), which the ELMo page links for usage and which links the "
    "same file as https://allennlp.s3.amazonaws.com/models/transformer-elmo-2019.01.10.tar.gz; the "
    "architecture and training data are those of the config it trains, training_config/"
    "bidirectional_language_model.jsonnet (read at commit 058ee7a14739dedd2b74b3d69ac16a07d57e4419)")

MODELS: Dict[str, PublishedModel] = {m.name: m for m in (
    PublishedModel(
        DEFAULT_NAME, "bundled English model (see its MODEL_CARD.md)", LSTM, (), "en",
        "337 Project Gutenberg books, UD EWT train, WNUT-17 train, tweets and SST train sentences",
        "ships with the package; sources in the model card", ("spacy_elmo/models/default/MODEL_CARD.md",), 3.0, 512, 128, 1, folder=BUNDLED_DIR),
    _english("small", "Small", "2x1024_128_2048cnn_1xhighway", 13.6, 1024, 128, 1, BILLION_WORDS),
    _english("medium", "Medium", "2x2048_256_2048cnn_1xhighway", 28.0, 2048, 256, 1, BILLION_WORDS),
    _english("original", "Original", "2x4096_512_2048cnn_2xhighway", 93.6, 4096, 512, 2, BILLION_WORDS),
    _english("original-5.5B", "Original (5.5B)", "2x4096_512_2048cnn_2xhighway_5.5B", 93.6, 4096, 512, 2,
             "5.5B tokens: Wikipedia (1.9B) and WMT 2008-2012 news crawl (3.6B); the ELMo page's "
             "recommended default"),
    PublishedModel(
        "pubmed", "PubMed (contributed by Matthew Peters)",
        LSTM, _pair(f"{S3}/contributed/pubmed", "elmo_2x4096_512_2048cnn_2xhighway_options.json",
                    "elmo_2x4096_512_2048cnn_2xhighway_weights_PubMed_only.hdf5"),
        "en", "PubMed (the weight file is named PubMed_only); the file names give the Original architecture, "
        "2x4096_512_2048cnn_2xhighway", AI2_LICENCE,
        (ELMO_PAGE + "; added in commit f3a4a1835bbd6e6c87245fb709aa9af187d99e8e", FLAIR),
        93.6, 4096, 512, 2),
    PublishedModel(
        "portuguese", "Portuguese, Wikipedia corpus (contributed by the Federal University of Goias)",
        LSTM, _pair(f"{S3}/contributed/pt/wikipedia", "options.json", "elmo_pt_weights.hdf5"),
        "pt", "Portuguese Wikipedia", NO_LICENCE,
        (ELMO_PAGE + "; these addresses since commit f7ef5c301d270fa6fa321dfe5d87bf0a67172b7e (2020-03-05), "
         "which replaced contributed/pt/elmo_pt_options.json and elmo_pt_weights.hdf5, the addresses flair "
         "still links", FLAIR)),
    PublishedModel(
        "portuguese-brwac", "Portuguese, brWaC corpus (contributed by the Federal University of Goias)",
        LSTM, _pair(f"{S3}/contributed/pt/brwac", "options.json", "elmo_pt_weights_dgx1.hdf5"),
        "pt", "brWaC, the Brazilian Portuguese Web as Corpus", NO_LICENCE,
        (ELMO_PAGE + "; since commit f7ef5c301d270fa6fa321dfe5d87bf0a67172b7e (2020-03-05)",)),
    PublishedModel(
        "japanese", "Japanese (contributed by ExaWizards Inc.: Enkhbold Bataa, Joshua Wu)",
        LSTM, _pair("https://exawizardsallenlp.blob.core.windows.net/data", "options.json", "weights.hdf5"),
        "ja", "not stated on the ELMo page; see Bataa and Wu, ACL 2019 (https://www.aclweb.org/anthology/P19-1458/)",
        NO_LICENCE,
        (ELMO_PAGE + "; added in commit b4755e30112a2754ac6e7772977e67eff5dfdaf9 (2019-04-02); hosted by "
         "the contributor, not in AllenNLP's storage",)),
    PublishedModel(
        "transformer", "Transformer ELMo (contributed by Joel Grus and Brendan Roof; Peters et al. 2018, "
        "Dissecting Contextual Word Embeddings)", TRANSFORMER,
        (RemoteFile(f"{S3_MODELS}/transformer-elmo-2019.01.10.tar.gz"),), "en", BILLION_WORDS, AI2_LICENCE,
        (ELMO_PAGE + ", Contributed ELMo Models, row 'Transformer ELMo'; added in commit "
         "1301d3b66ada038064a622fdef92756e57b8b74d (2019-03-27)", TRANSFORMER_TUTORIAL),
        projection_dim=512, n_highway=2),
)}


def model_names() -> Tuple[str, ...]:
    return tuple(MODELS)


def get_model(name: Optional[str] = None) -> PublishedModel:
    """The catalogue entry (none named: the bundled model), or an error listing every name."""
    try:
        return MODELS[DEFAULT_NAME if name is None else name]
    except (KeyError, TypeError):
        raise UnknownModelError(f"unknown ELMo model {name!r}; known models: {', '.join(model_names())} "
                                "(`python -m spacy_elmo models` lists them)") from None
