/* cria.h: everything a plugin or a program using libcria needs. */
#pragma once

#include <cria/cria-version.h>
#include <cria/cria-error.h>
#include <cria/cria-dtype.h>
#include <cria/cria-props.h>
#include <cria/cria-plugin.h>
#include <cria/cria-registry.h>
#include <cria/cria-record.h>
#include <cria/cria-stage.h>
#include <cria/cria-output.h>
#include <cria/cria-input.h>
#include <cria/cria-pipeline.h>
#include <cria/cria-paths.h>
#include <cria/cria-csv.h>
#include <cria/cria-rows.h>
#include <cria/cria-text.h>
#include <cria/cria-prompt-format.h>
