"""Metadata of wrapper models: the wrapped models' authors and references kept,
each once, and the wrapper's own reference added."""

from metatomic.torch import ModelMetadata

from pet_mta.wrappers.loading import wrapped_metadata


def member(name: str, authors, architecture) -> ModelMetadata:
    return ModelMetadata(
        name=name,
        description=f"{name} description",
        authors=authors,
        references={"architecture": architecture, "model": [f"{name} paper"]},
    )


def test_authors_and_references_of_every_wrapped_model_once():
    first = member("a", ["Ada", "Bob"], ["PET"])
    second = member("b", ["Bob", "Cy"], ["PET", "other"])
    metadata = wrapped_metadata([first, second], "wrapper", "What it does.", "WRAP")
    assert metadata.name == "wrapper"
    assert metadata.description == "What it does. a description"
    assert metadata.authors == ["Ada", "Bob", "Cy"]
    assert metadata.references["architecture"] == ["PET", "other", "WRAP"]
    assert metadata.references["model"] == ["a paper", "b paper"]


def test_the_wrapper_reference_is_not_repeated():
    first = member("a", [], ["WRAP"])
    metadata = wrapped_metadata([first], "wrapper", "", "WRAP")
    assert metadata.references["architecture"] == ["WRAP"]
    assert metadata.description == "a description"
