#!/usr/bin/env python3
"""Generate oxifhir's compact FHIR R4 data files from the official definitions.

What it does
------------
Reads three definition files from a directory of FHIR R4 (4.0.1) definitions:

* ``fhir.schema.json``                 -- the R4 JSON schema
* ``search-parameters.json``           -- the Bundle of every R4 SearchParameter
* ``compartmentdefinition-patient.json`` -- the Patient CompartmentDefinition

and writes four small files into ``crates/oxifhir-model/data/`` so that the product builds
from its own repository alone (they are embedded with ``include_str!``):

* ``fhir.schema.json``        -- the schema, minified, with every ``description`` removed and
  only the definitions an R4 resource can reach. Integer types are tightened (see below).
* ``search-parameters.json``  -- one compact object per search parameter: ``code``, ``url``,
  ``base``, ``type``, ``expression`` (absent when the definition has none), ``target``,
  ``component`` (composites only), and ``multipleOr``/``comparator`` when the definition
  gives them. Sorted by ``url``.
* ``compartment-patient.json`` -- ``{"<ResourceType>": ["param", ...]}`` for every type in the
  Patient compartment that has at least one parameter.
* ``resource-types.json``     -- the sorted names of every concrete R4 resource type.

About the schema
----------------
The ``fhir.schema.json`` shipped in ``fhir-r4/`` is the R4 schema as distributed by Medplum:
besides the 146 R4 resource types it defines Medplum's own resources (``Project``, ``Bot``,
``AsyncJob`` ...) and their parts, and it adds a few elements to R4 types (``Meta.project``,
``Meta.author``, ``Meta.account``, ``Meta.compartment``, ``Reference.resource``,
``OperationOutcome.status``, ``OperationOutcome.resource``). This script keeps R4 only:

* an R4 resource type is a type of the schema's ``discriminator.mapping`` whose definition
  has the ``_implicitRules`` element every R4 resource inherits (Medplum's types lack it); the
  result is checked against the types the search parameters and the compartment name;
* the Medplum-only elements above are removed from the R4 types (when present);
* ``ResourceList`` (what ``contained``, ``Bundle.entry.resource`` and
  ``Parameters.parameter.resource`` accept) and the root ``oneOf`` list R4 types only;
* unreachable definitions, ``description``s and the ``discriminator`` are dropped.

Three changes make the schema closer to R4 than the original and its errors clearer: the
primitive schemas written inline for choice elements (``valueDateTime``...) become ``$ref``s
to their primitive type (for ``base64Binary`` the inline copies have a pattern that
Medplum's definition dropped; the definition wins, so base64 content is not checked);
``pattern`` on number and boolean types is removed (JSON Schema applies ``pattern`` to strings
only: it could only repeat a type error); and
``integer``/``positiveInt``/``unsignedInt`` become ``"type": "integer"`` with their R4 ranges
(32-bit, > 0, >= 0) instead of any number.

How to run
----------
From the repository root::

    python3 tools/gen_fhir_data.py ../shared/fhir-r4

The argument defaults to ``../shared/fhir-r4``. Output is deterministic (same input, same
bytes) and the script prints each file it wrote with its size. Python 3.11, stdlib only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "crates" / "oxifhir-model" / "data"

# Elements Medplum adds to R4 types; they are not R4 and are removed.
MEDPLUM_ADDITIONS = {
    "Meta": ["project", "author", "account", "compartment"],
    "Reference": ["resource"],
    "OperationOutcome": ["status", "resource"],
}

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
# R4 integer types: JSON Schema "integer" with their value ranges.
INTEGER_TYPES = {
    "integer": {"type": "integer", "minimum": INT32_MIN, "maximum": INT32_MAX},
    "positiveInt": {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
    "unsignedInt": {"type": "integer", "minimum": 0, "maximum": INT32_MAX},
}

REF_PREFIX = "#/definitions/"


def fail(message: str) -> None:
    """Stops with a message on stderr and exit status 1."""
    print(f"gen_fhir_data: {message}", file=sys.stderr)
    sys.exit(1)


def load(path: Path):
    """Parses one JSON definition file."""
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"cannot read {path}: {e}")


def strip_schema(node):
    """Returns a copy of a schema node without `description` keywords.

    Only keywords are removed: the keys of `properties` and `definitions` are names (an
    element may well be called `description`), so their values are stripped one by one.
    """
    if isinstance(node, list):
        return [strip_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in ("properties", "definitions") and isinstance(value, dict):
            out[key] = {name: strip_schema(sub) for name, sub in value.items()}
        else:
            out[key] = strip_schema(value)
    return out


def refs_in(node, found: set[str]) -> None:
    """Adds the definition names `node` references with `$ref` to `found`."""
    if isinstance(node, list):
        for item in node:
            refs_in(item, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if not value.startswith(REF_PREFIX):
                    fail(f"unexpected reference {value!r}")
                found.add(value[len(REF_PREFIX) :])
            else:
                refs_in(value, found)


def inline_to_refs(definitions: dict) -> None:
    """Replaces the primitive schemas the R4 schema writes inline for choice elements
    (`effectiveDateTime: {"pattern": ..., "type": "string"}`) with a `$ref` to the primitive
    type the element name ends with (`#/definitions/dateTime`), when they are the same schema.

    Every primitive is then checked by its one definition, which the integer tightening below
    also reaches, and a validation error's schema location names the FHIR type.
    """
    primitives = {
        name: d
        for name, d in definitions.items()
        if name[:1].islower() and "type" in d and "properties" not in d
    }
    # Longest names first, so that `dateTime` wins over `time` for `effectiveDateTime`.
    by_suffix = sorted(primitives, key=len, reverse=True)
    differing = set()
    for d in definitions.values():
        for element, schema in d.get("properties", {}).items():
            if "$ref" in schema or "pattern" not in schema:
                continue
            for name in by_suffix:
                if not element.endswith(name[0].upper() + name[1:]):
                    continue
                if primitives[name].get("type") != schema.get("type"):
                    fail(f"inline schema of {element!r} is not a {name}")
                if primitives[name] != schema:
                    differing.add(name)
                d["properties"][element] = {"$ref": REF_PREFIX + name}
                break
            else:
                fail(f"no primitive type for the inline schema of element {element!r}")
    for name in sorted(differing):
        # Medplum's base64Binary definition has no pattern while the inline copies have one;
        # the definition is what `Binary.data` and `Attachment.data` use, so it wins.
        print(f"note: inline {name} schemas differed from the definition; the definition is used")


def r4_resource_types(schema) -> list[str]:
    """The concrete R4 resource types of the schema, sorted (see the module docstring)."""
    definitions = schema["definitions"]
    mapping = schema.get("discriminator", {}).get("mapping")
    if mapping:
        names = list(mapping)
    else:
        names = [entry["$ref"][len(REF_PREFIX) :] for entry in schema["oneOf"]]
    types = []
    for name in names:
        properties = definitions.get(name, {}).get("properties", {})
        if "resourceType" in properties and "_implicitRules" in properties:
            types.append(name)
    types = sorted(set(types) - {"Resource", "DomainResource"})
    if not types:
        fail("no resource types found in the schema")
    return types


def build_schema(schema, types: list[str]):
    """The compact R4 schema: R4 resources only, no descriptions, unreachable parts dropped."""
    definitions = {name: strip_schema(d) for name, d in schema["definitions"].items()}
    for name, elements in MEDPLUM_ADDITIONS.items():
        properties = definitions.get(name, {}).get("properties", {})
        for element in elements:
            properties.pop(element, None)
            properties.pop("_" + element, None)
    inline_to_refs(definitions)
    for name, replacement in INTEGER_TYPES.items():
        if name in definitions:
            definitions[name] = dict(replacement)
    for d in definitions.values():
        if d.get("type") not in (None, "string"):
            d.pop("pattern", None)
    resource_refs = [{"$ref": REF_PREFIX + t} for t in types]
    definitions["ResourceList"] = {"oneOf": resource_refs}

    # Keep what the R4 resources can reach.
    reachable: set[str] = set()
    pending = ["ResourceList", *types]
    while pending:
        name = pending.pop()
        if name in reachable:
            continue
        if name not in definitions:
            fail(f"reference to a missing definition {name!r}")
        reachable.add(name)
        found: set[str] = set()
        refs_in(definitions[name], found)
        pending.extend(sorted(found - reachable))

    return {
        "$schema": schema.get("$schema", "http://json-schema.org/draft-06/schema#"),
        "id": schema.get("id", "http://hl7.org/fhir/json-schema/4.0"),
        "oneOf": resource_refs,
        "definitions": {name: definitions[name] for name in sorted(reachable)},
    }


def build_search_parameters(bundle, types: list[str]) -> list[dict]:
    """One compact object per SearchParameter of the Bundle, sorted by url."""
    known_bases = set(types) | {"Resource", "DomainResource"}
    params = []
    for entry in bundle.get("entry", []):
        r = entry.get("resource", {})
        if r.get("resourceType") != "SearchParameter":
            continue
        for field in ("code", "url", "base", "type"):
            if field not in r:
                fail(f"search parameter {r.get('id')!r} has no {field}")
        unknown = set(r["base"]) - known_bases
        if unknown:
            fail(f"search parameter {r['url']} has unknown base types {sorted(unknown)}")
        p = {"code": r["code"], "url": r["url"], "base": list(r["base"]), "type": r["type"]}
        if r.get("expression"):
            p["expression"] = r["expression"]
        p["target"] = list(r.get("target", []))
        if r["type"] == "composite":
            p["component"] = [
                {"definition": c["definition"], "expression": c["expression"]}
                for c in r.get("component", [])
            ]
        if "multipleOr" in r:
            p["multipleOr"] = r["multipleOr"]
        if "multipleAnd" in r:
            p["multipleAnd"] = r["multipleAnd"]
        if r.get("modifier"):
            p["modifier"] = list(r["modifier"])
        if r.get("comparator"):
            p["comparator"] = list(r["comparator"])
        params.append(p)
    params.sort(key=lambda p: p["url"])
    urls = [p["url"] for p in params]
    if len(set(urls)) != len(urls):
        fail("duplicate search parameter urls")
    return params


def build_compartment(definition, types: list[str], params: list[dict]) -> dict:
    """`{type: [param, ...]}` for the compartment's types that have parameters, sorted by type."""
    out = {}
    for r in definition.get("resource", []):
        code = r["code"]
        if code not in types:
            fail(f"compartment names an unknown resource type {code!r}")
        if r.get("param"):
            out[code] = list(r["param"])
    # Every parameter the compartment names must exist for its type ("{def}" is special).
    codes = {(b, p["code"]) for p in params for b in p["base"]}
    for code, names in out.items():
        for name in names:
            if name != "{def}" and (code, name) not in codes:
                fail(f"compartment parameter {code}.{name} is not a search parameter")
    return dict(sorted(out.items()))


def write(name: str, value) -> None:
    """Writes `value` as minified UTF-8 JSON (with a final newline) and reports it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"
    path = OUT_DIR / name
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(REPO_ROOT)} ({len(text.encode('utf-8')):,} bytes)")


def main(argv: list[str]) -> None:
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__)
        sys.exit(0 if len(argv) == 2 else 2)
    source = Path(argv[1]) if len(argv) == 2 else REPO_ROOT / ".." / "shared" / "fhir-r4"
    schema = load(source / "fhir.schema.json")
    search_bundle = load(source / "search-parameters.json")
    compartment = load(source / "compartmentdefinition-patient.json")

    types = r4_resource_types(schema)
    params = build_search_parameters(search_bundle, types)
    patient = build_compartment(compartment, types, params)
    compact_schema = build_schema(schema, types)

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write("fhir.schema.json", compact_schema)
    write("search-parameters.json", params)
    write("compartment-patient.json", patient)
    write("resource-types.json", types)
    print(
        f"{len(types)} resource types, {len(compact_schema['definitions'])} schema definitions, "
        f"{len(params)} search parameters, {len(patient)} Patient compartment types"
    )


if __name__ == "__main__":
    main(sys.argv)
