/* models.h: the architectures of the models plugin. */
#pragma once

#include <cria/cria-error.h>
#include <cria/cria-model.h>

extern const CriaModelVTable cria_llama_vtable;
extern const CriaModelVTable cria_gpt2_vtable;
