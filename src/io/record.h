/* Serializing the rotation record (core/model.h rotq_rotation_record) into outputs. */
#ifndef ROTQ_IO_RECORD_H
#define ROTQ_IO_RECORD_H
#include "core/model.h"

void *rotq_record_to_json(const rotq_rotation_record *r);  /* json_t*, NULL when nothing was done */
rotq_status rotq_record_from_json(const void *json, const char *origin, rotq_rotation_record *r);
char *rotq_record_to_string(const rotq_rotation_record *r); /* malloc'd compact JSON, or NULL */
rotq_status rotq_record_from_string(const char *text, const char *origin, rotq_rotation_record *r);
#endif
