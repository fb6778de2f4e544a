/* Collections and their fields: the schema of every record, in PocketBase's
 * shapes. A collection is immutable once built; a change builds a new one and
 * publishes a new schema snapshot (schema.h), so readers never lock.
 *
 * Every name that reaches SQL (collection and field names) is checked here
 * against [A-Za-z_][A-Za-z0-9_]{0,63} and is always quoted by the store. */
#ifndef DOMAIN_COLLECTION_H
#define DOMAIN_COLLECTION_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/slice.h"

enum field_type {
    FIELD_TEXT,
    FIELD_NUMBER,
    FIELD_BOOL,
    FIELD_EMAIL,
    FIELD_URL,
    FIELD_DATE,
    FIELD_SELECT,
    FIELD_JSON,
    FIELD_AUTODATE,
    FIELD_PASSWORD, /* auth collections only: stored as an Argon2id hash, never output */
    FIELD_RELATION, /* ids of records of another collection: TEXT, or a JSON array if multiple */
    FIELD_FILE,     /* stored file names: TEXT, or a JSON array if multiple */
};

struct field {
    char *id;   /* stable across renames, e.g. "text3208210256" */
    char *name; /* validated identifier */
    enum field_type type;
    bool system;
    bool hidden;
    bool presentable;
    bool required;
    union {
        struct {
            int64_t min, max; /* characters; min 0 = none, max 0 = 5000 */
            char *pattern;    /* POSIX ERE, NULL if none */
            regex_t re;       /* pattern compiled, valid when re_ready */
            bool re_ready;
            bool primary_key; /* the "id" field */
            char *autogenerate_pattern;
        } text;
        struct {
            bool has_min, has_max;
            double min, max;
            bool only_int;
        } number;
        struct {
            char **values;
            size_t nvalues;
            int64_t max_select; /* 1 = single value, >1 = multiple (JSON array) */
        } select;
        struct {
            int64_t max_size; /* bytes of the JSON text; 0 = default 1 MiB */
        } json;
        struct {
            bool on_create, on_update;
        } autodate;
        struct {
            char **only_domains, **except_domains;
            size_t nonly, nexcept;
        } email_url;
        struct {
            char *min, *max; /* PocketBase datetime text, NULL if unbounded */
        } date;
        struct {
            int64_t min, max, cost; /* characters (code points); max 0 = 71 */
            char *pattern;          /* checked on the plain text, NULL if none */
        } password;
        struct {
            char *collection_id; /* the related collection's id */
            bool cascade_delete;
            int64_t min_select, max_select; /* max_select <= 1: single */
        } relation;
        struct {
            int64_t max_select; /* <= 1: single */
            int64_t max_size;   /* bytes per file; 0 = PocketBase's default 5 MiB */
            char **mime_types, **thumbs;
            size_t nmime, nthumbs;
            bool protect; /* PocketBase's "protected": downloads need a file token */
        } file;
    } opt;
};

enum collection_type { COLLECTION_BASE, COLLECTION_AUTH, COLLECTION_VIEW };

/* A parsed "CREATE [UNIQUE] INDEX name ON table (col [COLLATE NOCASE] [ASC|DESC], ...)
 * [WHERE col != '']". The store builds its SQL from these parts, never from `sql`;
 * the table name in `sql` is ignored (it always follows the collection's name). */
struct collection_index {
    char *sql;  /* as the client gave it */
    char *name; /* [A-Za-z0-9_]{1,64} */
    bool unique;
    char **columns; /* field names, each checked to exist */
    bool *desc;
    bool *nocase; /* COLLATE NOCASE on that column */
    size_t ncolumns;
    /* Partial-index condition, NULL if none. Only the form PocketBase uses for
     * the auth email index is accepted ("col" != '' on a field of the
     * collection) and is kept normalized as `"col" != ''`; any other WHERE is
     * rejected as not supported yet. */
    char *where;
};

struct collection {
    char *id;   /* "pbc_" + digits, or a client-given id */
    char *name; /* validated identifier */
    enum collection_type type;
    bool system;
    struct field *fields;
    size_t nfields;
    struct collection_index *indexes;
    size_t nindexes;
    char *rules[7]; /* enum collection_rule; NULL = superusers only */
    char created[32], updated[32];
    json_t
        *auth_options; /* auth collections: passwordAuth, authToken, ... as PocketBase shows them */
    uint32_t refcount;
};

enum collection_rule {
    RULE_LIST,
    RULE_VIEW,
    RULE_CREATE,
    RULE_UPDATE,
    RULE_DELETE,
    RULE_AUTH,   /* auth collections */
    RULE_MANAGE, /* auth collections */
};

/* ---- names ---- */

bool collection_name_valid(struct slice name);
const char *field_type_name(enum field_type t);

/* ---- lookup ---- */

const struct field *collection_field(const struct collection *c, struct slice name);
const struct field *collection_field_by_id(const struct collection *c, struct slice id);
/* True for select, relation and file fields that hold a JSON array of values
 * (maxSelect > 1); false for every other field. */
bool field_is_multiple(const struct field *f);
/* A field no API answer shows, not even to a superuser (who sees hidden
 * fields): the password hash and an auth collection's tokenKey. Inline: the
 * store's row rendering needs it without the rest of this module. */
static inline bool field_is_secret(const struct collection *c, const struct field *f)
{
    return f->type == FIELD_PASSWORD ||
           (c->type == COLLECTION_AUTH && strcmp(f->name, "tokenKey") == 0);
}

/* ---- JSON in and out ---- */

/* Builds a collection from a client's JSON (POST or PATCH body). `prev` is the
 * collection being updated, or NULL for a create; a PATCH keeps what the body
 * leaves out. System fields are added or kept as PocketBase does: the `id`
 * field always (first); for auth collections also password, tokenKey, email,
 * emailVisibility and verified, plus the unique indexes on tokenKey and email.
 * Like PocketBase (v0.23+), created/updated autodate fields are not added:
 * clients (the console, the SDK scaffolds) send them. Field ids are kept
 * across renames so that the store can tell a rename from a drop and an add.
 * Names starting with "_" are refused here (see collection_from_json_system).
 * The returned collection has a refcount of 1. Collection name uniqueness
 * across the schema is the caller's check (schema_find).
 * On failure returns NULL and sets *errors to PocketBase's `data` object
 * ({"fields": {"0": {"name": {"code","message"}}}, ...}); the caller owns it. */
struct collection *collection_from_json(json_t *body, const struct collection *prev,
                                        json_t **errors);
/* The same, for collections the server itself owns ("_superusers") and for
 * reloading stored collections: names may start with "_" and "system" is
 * taken from the body on create. Never call it with a client's body. */
struct collection *collection_from_json_system(json_t *body, const struct collection *prev,
                                               json_t **errors);
struct schema;
/* The checks of c that need the rest of the schema, run by the API after
 * collection_from_json and before saving: every relation field's collectionId
 * must name a collection of s (or c itself, a self-relation), and a relation
 * field kept from prev may not change its collectionId. 0, or -1 with
 * *errors set to PocketBase's `data` object
 * ({"fields": {"2": {"collectionId": {"code","message"}}}}; caller owns it). */
int collection_check_relations(const struct schema *s, const struct collection *c,
                               const struct collection *prev, json_t **errors);
/* The PocketBase JSON shape of a collection, as the API shows it (token
 * secrets of auth collections left out); the caller owns the result. */
json_t *collection_to_json(const struct collection *c);
/* The same shape including the auth token secrets: what the store persists,
 * so that collection_from_json_system(collection_to_json_stored(c), NULL)
 * rebuilds c exactly. Caller owns the result. */
json_t *collection_to_json_stored(const struct collection *c);

void collection_retain(struct collection *c);
/* Drops one reference; frees at zero. Accepts NULL. */
void collection_release(struct collection *c);

/* ---- records ---- */

/* Validates a create (prev == NULL) or an update (prev = the stored record)
 * against the collection. `input` holds only what the client sent, already
 * merged from JSON or multipart; "field+" / "+field" / "field-" modifiers on
 * select fields are applied. On success returns 0 and sets *out to the full
 * record to store, with every column present, autodates set and a fresh
 * tokenKey on auth records that are new or whose password changed (caller owns
 * it). Password values must arrive already hashed (auth_password_hash), because
 * hashing is slow and must not run where this runs (on the store's writer);
 * the caller checks the plain text's length first with record_password_check. On failure returns -1 and sets *errors to
 * PocketBase's `data` object ({"title": {"code": "validation_required",
 * "message": "Cannot be blank."}}); caller owns it. `now_ms` is the
 * time autodate fields take. */
int record_validate(const struct collection *c, json_t *input, json_t *prev, int64_t now_ms,
                    json_t **out, json_t **errors);

/* Checks a plain-text password against a password field's min/max
 * (characters, max 71 when unset) and pattern before it is hashed, with
 * PocketBase's codes and messages. Returns NULL if fine, else a PocketBase error object
 * {"code","message"} the caller owns. */
json_t *record_password_check(const struct field *f, struct slice plain);

#endif
