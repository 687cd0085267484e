// CYara: libyara (Debian's libyara-dev, YARA 4.x) as Swift sees it.
#pragma once
#include <yara.h>
#include <string.h>

// The iteration macros of <yara/rules.h> and the references libyara declares as unions are not
// imported into Swift; these inline functions stand in for them.

static inline const char *cyara_rule_identifier(const YR_RULE *rule) { return rule->identifier; }
static inline const char *cyara_rule_namespace(const YR_RULE *rule) { return rule->ns->name; }
/// The rule's tags: NUL-separated, ending with an empty one (NULL when it has none).
static inline const char *cyara_rule_tags(const YR_RULE *rule) { return rule->tags; }

static inline const YR_META *cyara_rule_first_meta(const YR_RULE *rule) { return rule->metas; }
static inline const YR_META *cyara_meta_next(const YR_META *meta) {
    return META_IS_LAST_IN_RULE(meta) ? NULL : meta + 1;
}
static inline const char *cyara_meta_identifier(const YR_META *meta) { return meta->identifier; }
/// META_TYPE_INTEGER (1), META_TYPE_STRING (2) or META_TYPE_BOOLEAN (3).
static inline int32_t cyara_meta_type(const YR_META *meta) { return meta->type; }
static inline const char *cyara_meta_string(const YR_META *meta) { return meta->string; }
static inline int64_t cyara_meta_integer(const YR_META *meta) { return meta->integer; }

static inline const YR_STRING *cyara_rule_first_string(const YR_RULE *rule) { return rule->strings; }
static inline const YR_STRING *cyara_string_next(const YR_STRING *string) {
    return STRING_IS_LAST_IN_RULE(string) ? NULL : string + 1;
}
static inline const char *cyara_string_identifier(const YR_STRING *string) { return string->identifier; }
/// The string's first match in this scan (private matches are skipped by the caller's loop).
static inline const YR_MATCH *cyara_string_first_match(YR_SCAN_CONTEXT *context, const YR_STRING *string) {
    return context->matches[string->idx].head;
}
static inline const YR_MATCH *cyara_match_next(const YR_MATCH *match) { return match->next; }
static inline int64_t cyara_match_offset(const YR_MATCH *match) { return match->base + match->offset; }
static inline int32_t cyara_match_length(const YR_MATCH *match) { return match->match_length; }
static inline int cyara_match_is_private(const YR_MATCH *match) { return match->is_private; }
/// How many times the string matched, private matches included (the list keeps a bounded number).
static inline int32_t cyara_string_match_count(YR_SCAN_CONTEXT *context, const YR_STRING *string) {
    return context->matches[string->idx].count;
}

// One block of memory scanned as a file of `file_size` bytes: a capped read of a larger file
// keeps YARA's `filesize` the file's, not the prefix's.
typedef struct {
    YR_MEMORY_BLOCK block;
    const uint8_t *data;
    uint64_t file_size;
    int given;
} cyara_single_block;

static inline const uint8_t *cyara_single_block_fetch(YR_MEMORY_BLOCK *block) {
    return ((cyara_single_block *)block->context)->data;
}
static inline YR_MEMORY_BLOCK *cyara_single_block_first(YR_MEMORY_BLOCK_ITERATOR *iterator) {
    cyara_single_block *single = (cyara_single_block *)iterator->context;
    single->given = 1;
    return &single->block;
}
static inline YR_MEMORY_BLOCK *cyara_single_block_next(YR_MEMORY_BLOCK_ITERATOR *iterator) {
    (void)iterator;
    return NULL;
}
static inline uint64_t cyara_single_block_file_size(YR_MEMORY_BLOCK_ITERATOR *iterator) {
    return ((cyara_single_block *)iterator->context)->file_size;
}

/// Scans `length` bytes at `data` as the first bytes of a file of `file_size` bytes.
static inline int cyara_scan_prefix(YR_SCANNER *scanner, const uint8_t *data, size_t length, uint64_t file_size) {
    cyara_single_block single;
    memset(&single, 0, sizeof single);
    single.block.size = length;
    single.block.base = 0;
    single.block.context = &single;
    single.block.fetch_data = cyara_single_block_fetch;
    single.data = data;
    single.file_size = file_size;
    YR_MEMORY_BLOCK_ITERATOR iterator;
    memset(&iterator, 0, sizeof iterator);
    iterator.context = &single;
    iterator.first = cyara_single_block_first;
    iterator.next = cyara_single_block_next;
    iterator.file_size = cyara_single_block_file_size;
    return yr_scanner_scan_mem_blocks(scanner, &iterator);
}
