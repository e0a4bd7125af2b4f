/* cria.h: everything a plugin or a program using libcria needs. */
#pragma once

#include <cria/cria-version.h>
#include <cria/cria-error.h>
#include <cria/cria-dtype.h>
#include <cria/cria-tensor.h>
#include <cria/cria-graph.h>
#include <cria/cria-backend.h>
#include <cria/cria-props.h>
#include <cria/cria-plugin.h>
#include <cria/cria-registry.h>
#include <cria/cria-record.h>
#include <cria/cria-stage.h>
#include <cria/cria-output.h>
#include <cria/cria-input.h>
#include <cria/cria-pipeline.h>
#include <cria/cria-paths.h>
#include <cria/cria-generator.h>
#include <cria/cria-optim.h>
#include <cria/cria-plot.h>
#include <cria/cria-metric.h>
#include <cria/cria-safetensors.h>
#include <cria/cria-hfmodel.h>
#include <cria/cria-torchfile.h>
#include <cria/cria-tokenizer.h>
#include <cria/cria-bpe-trainer.h>
