#!/usr/bin/env node
// Decodes a pprof file (gzip or plain profile.proto) with the npm
// `pprof-format` reader and prints it as JSON on stdout, for
// memprof's allocator-tests (src/lib.rs, `pprof_format`).
//
// Usage: decode.cjs PROFILE [FUNCTION...]
// With functions, only the samples whose stack contains one of them are
// printed; a function matches a name equal to it or ending in `::` + it
// (`alloc_hundreds` matches `rate1_exact::alloc_hundreds`).
//
// Output:
// {
//   "periodType": ["space", "bytes"], "period": 1,
//   "sampleTypes": [["alloc_objects", "count"], ...],
//   "defaultSampleType": "",
//   "comments": ["..."],
//   "samples": [{ "values": [1, 2, 3, 4],
//                 "numLabels": { "bytes": [100], "age": [0] },
//                 "numUnits": { "bytes": [""], "age": ["seconds"] },
//                 "strLabels": { "tenant": ["acme"] },
//                 "locations": [["leaf fn", "inlined-into fn"], ["caller"], ...] }]
// }
// `locations` is leaf first; each location lists its functions innermost
// (inlined) first, as profile.proto orders `Location.line`. Numbers that do
// not fit a double exactly are printed as strings.
'use strict';

const fs = require('node:fs');
const zlib = require('node:zlib');

let pprof;
try {
  pprof = require('pprof-format');
} catch (e) {
  process.stderr.write(
    'cannot load the npm package pprof-format: run `npm ci` in allocator-tests/js\n' + e + '\n');
  process.exit(2);
}

const file = process.argv[2];
const wanted = process.argv.slice(3);
if (!file) {
  process.stderr.write('usage: decode.cjs PROFILE [FUNCTION...]\n');
  process.exit(2);
}

let data = fs.readFileSync(file);
if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) {
  data = zlib.gunzipSync(data);
}
const p = pprof.Profile.decode(new Uint8Array(data.buffer, data.byteOffset, data.length));
const str = (i) => p.stringTable.strings[Number(i)] ?? `<bad string index ${i}>`;
const num = (v) => {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : String(v);
};

const functions = new Map();
for (const f of p.function) functions.set(Number(f.id), str(f.name));
const locations = new Map();
for (const l of p.location) {
  locations.set(Number(l.id), l.line.map((ln) => {
    const name = functions.get(Number(ln.functionId));
    return name === undefined ? `<bad function id ${ln.functionId}>` : name;
  }));
}

const fnMatches = (name, f) => name === f || name.endsWith('::' + f);
const keep = (s) => wanted.length === 0 || s.locationId.some((id) =>
  (locations.get(Number(id)) ?? []).some((name) => wanted.some((f) => fnMatches(name, f))));

const out = {
  periodType: p.periodType ? [str(p.periodType.type), str(p.periodType.unit)] : null,
  period: num(p.period),
  sampleTypes: p.sampleType.map((t) => [str(t.type), str(t.unit)]),
  defaultSampleType: str(p.defaultSampleType),
  comments: p.comment.map(str),
  samples: p.sample.filter(keep).map((s) => {
    const numLabels = {};
    const numUnits = {};
    const strLabels = {};
    for (const l of s.label) {
      const key = str(l.key);
      if (Number(l.str) !== 0) {
        (strLabels[key] ??= []).push(str(l.str));
      } else {
        (numLabels[key] ??= []).push(num(l.num));
        (numUnits[key] ??= []).push(str(l.numUnit ?? 0));
      }
    }
    return {
      values: s.value.map(num),
      numLabels,
      numUnits,
      strLabels,
      locations: s.locationId.map((id) => {
        const fns = locations.get(Number(id));
        return fns === undefined ? [`<bad location id ${id}>`] : fns;
      }),
    };
  }),
};
process.stdout.write(JSON.stringify(out) + '\n');
