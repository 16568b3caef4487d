/*
 * fuzz_store.c - fuzz entry point for what the layer store reads from disk.
 * The first byte picks the parser, the rest is the file:
 *   0  manifest.json: the checksum and version checks, then the hparams
 *   1  a layer file: header, identity and checksums, then the tensor views
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store/layerfile.h"
#include "store/store.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    const uint8_t kind = data[0];
    data++;
    size--;
    if (kind == 0) {
        cJSON *m = NULL;
        int old = 0;
        if (air_manifest_parse((const char *)data, size, "fuzz/manifest.json", &m, &old) == AIR_OK) {
            air_hparams hp;
            (void)air_hparams_from_json(cJSON_GetObjectItemCaseSensitive(m, "hparams"),
                                        "fuzz/manifest.json", &hp);
        }
        cJSON_Delete(m);
    } else if (kind == 1) {
        void *buf = air_lf_alloc(size);
        if (!buf)
            return 0;
        memcpy(buf, data, size);
        air_layer l;
        volatile size_t sink = 0;
        if (air_lf_bind("fuzz/layer.bin", buf, size, NULL, &l) == AIR_OK)
            for (int i = 0; i < l.n; i++)
                sink += strlen(l.t[i].name) + (size_t)l.t[i].nbytes;
        air_lf_ident want = {0, 2, 0, 0};
        (void)air_lf_bind("fuzz/layer.bin", buf, size, &want, &l);
        free(buf);
    }
    air_err_clear();
    return 0;
}
