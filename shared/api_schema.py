"""The shapes of the HTTP API (`serve`): one record's schema per project, the batch around it, and the answers.

A project documents its record with a pydantic model (`Project.request_schema`); the checking itself stays its
`parse_record`, so a bad record gets the very message `predict` gives, and one bad record of a batch fails alone.
The models here are what OpenAPI (`/docs`, `/openapi.json`) and `/metadata` show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

COMPONENTS = "#/components/schemas/{model}"


@dataclass(frozen=True)
class RecordSchema:
    """How `serve` documents one record of a project.

    `model` is the JSON record, for OpenAPI; `example` a record that works (shown in the docs, and sent once at
    start-up so the first real request finds everything warm); `files`: an uploaded file (multipart) is itself a
    record, its bytes handed to `parse_record` as `predict` hands it a file's.
    """

    model: type[BaseModel]
    example: Any = None
    files: bool = False


class AnyRecord(BaseModel):
    """A record as the project's `predict` reads one: a JSON object of its fields."""

    model_config = ConfigDict(extra="allow")


class ImageRecord(BaseModel):
    """One image: base64 of a PNG/JPEG file (a `data:` URL prefix is allowed), or its pixels as a nested array
    (H×W grey or H×W×3 colour; values 0-1, 0-255 or 0-65535)."""

    image: str | list[Any] = Field(description="base64 PNG/JPEG, or an H×W / H×W×3 array of pixels")


def generic_record_schema() -> RecordSchema:
    """The schema of a project that documents no fields of its own: any JSON object, checked by `parse_record`."""
    return RecordSchema(AnyRecord)


# A small grey image of a vertical stroke (a "1"): an example any image project can read.
EXAMPLE_PIXELS = [[255 if 3 <= column <= 4 and 1 <= row <= 6 else 0 for column in range(8)] for row in range(8)]


def image_record_schema() -> RecordSchema:
    """The schema of an image project: `{"image": base64 | pixels}` in JSON, or an uploaded image file."""
    return RecordSchema(ImageRecord, example={"image": EXAMPLE_PIXELS}, files=True)


class RecordResult(BaseModel):
    """The answer to one record: its rows (the columns `predict` writes), or why it could not be read."""

    index: int = Field(description="the record's position in the request, from 0")
    rows: list[dict[str, Any]] = Field(default_factory=list, description="usually one row; a top-k list gives k")
    error: str | None = None
    fix: str | None = None


class PredictResponse(BaseModel):
    """Every record's answer, in the request's order, and which run gave them."""

    run: str
    predicted: int
    failed: int
    results: list[RecordResult]


class ErrorResponse(BaseModel):
    """A request that could not be answered: what is wrong (as the command line says it) and how to fix it."""

    error: str
    fix: str | None = None
    results: list[RecordResult] | None = None


class Health(BaseModel):
    status: str


def batch_model(record: type[BaseModel], max_records: int) -> type[BaseModel]:
    """`{"records": [record, ...]}`, at most `max_records` long: the batch form of `/predict`'s body."""
    return create_model(
        "PredictBatch",
        __doc__=f"A batch of 1 to {max_records} records; each is answered (or refused) on its own.",
        records=(list[record], Field(min_length=1, max_length=max_records)),  # type: ignore[valid-type]
    )


def request_body(schema: RecordSchema, max_records: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The OpenAPI `requestBody` of `/predict` (one record, or a batch; an uploaded file where the project reads
    files) and the component schemas it refers to."""
    batch = batch_model(schema.model, max_records)
    references, definitions = models_json_schema(
        [(schema.model, "validation"), (batch, "validation")], ref_template=COMPONENTS
    )
    record_ref, batch_ref = references[(schema.model, "validation")], references[(batch, "validation")]
    json_content: dict[str, Any] = {"schema": {"anyOf": [record_ref, batch_ref]}}
    if schema.example is not None:
        json_content["example"] = schema.example
    content: dict[str, Any] = {"application/json": json_content}
    if schema.files:
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary", "description": "an image file"}},
                "required": ["file"],
            }
        }
    return {"required": True, "content": content}, definitions.get("$defs", {})


def record_json_schema(schema: RecordSchema) -> dict[str, Any]:
    """One record's JSON schema, self-contained (for `/metadata`)."""
    return schema.model.model_json_schema()
