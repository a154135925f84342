#!/usr/bin/env bash
# The public data set check of `leadloop rules suggest` (docs/rules-lab.md#a-public-data-set).
#
# Leads.csv is the Kaggle data set "Leads X Education" (9,240 rows; published logistic regressions
# reach a cross-validated AUC of about 0.88-0.93). It is not shipped with leadloop (no licence
# says we may); download it from Kaggle ("Lead Scoring X Education") or from a public copy such as
# the GitHub repository KeerthanaDS1994/LEAD-SCORING-CASE-STUDY---Keerthana-DS (commit
# 21ddd2fcab13a907eac4425a4e5b806c5e4869e3, file Leads.csv), then:
#
#     bash scripts/leads-x-education/run.sh path/to/Leads.csv
#
# It imports the file into a fresh SQLite store under instance/leads-x-education/ and runs
# `leadloop rules suggest` on it with the shipped rules; the proposal is written beside the store.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
csv=${1:?usage: run.sh path/to/Leads.csv}
work="$root/instance/leads-x-education"
rm -rf "$work" && mkdir -p "$work"
export DATABASE_URL="sqlite:///$work/leads.db" LEADLOOP_INSTANCE_DIR="$work"
leadloop="$root/.venv/bin/leadloop"
"$leadloop" db upgrade
"$leadloop" import csv "$csv" --mapping "$here/mapping.yaml"
"$leadloop" rules suggest --target won --out "$work/suggested.yaml"
