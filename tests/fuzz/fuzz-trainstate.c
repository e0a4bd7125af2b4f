/* fuzz-trainstate: libFuzzer target of what `cria train` reads back from
 * JSON: a checkpoint's trainer_state.json (cria_train_state_read) and a
 * train config file (cria_train_options_set_json), each through the bounded
 * reader. The corpus holds real files and texts nested past the depth limit.
 *   ./configure --enable-fuzzing CC=clang && make && make fuzz */
#include <string.h>

#include <cria/cria.h>
#include <cria/cria-trainer.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  JsonNode *root = cria_json_parse ((const char *) data, (gssize) size, "trainer_state.json", 1, &error);
  if (!root) {
    g_assert (error);
    g_error_free (error);
    return 0;
  }
  if (JSON_NODE_HOLDS_OBJECT (root)) {
    /* The run's example count as the state's own order has it (to reach the
     * permutation checks), and one off. */
    JsonObject *o = json_node_get_object (root);
    JsonArray *order = cria_json_get_array (o, "data_order");
    guint n = order ? MIN (json_array_get_length (order), 1u << 16) : 0;
    for (guint k = 0; k < 2; k++) {
      CriaTrainState st;
      if (cria_train_state_read (o, "trainer_state.json", n + k, &st, &error)) {
        g_assert (st.data_order);
        g_free (st.data_order);
      } else {
        g_assert (error);
        g_clear_error (&error);
      }
    }
  }
  CriaProps *props = cria_props_new (cria_train_option_specs ());
  if (!cria_train_options_set_json (props, root, "train.json", &error)) {
    g_assert (error);
    g_clear_error (&error);
  }
  cria_props_free (props);
  json_node_unref (root);
  return 0;
}
