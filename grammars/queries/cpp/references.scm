(call_expression function: (identifier) @reference.call)
(call_expression function: (field_expression field: (field_identifier) @reference.call))
(call_expression function: (qualified_identifier name: (identifier) @reference.call))
(type_identifier) @reference.type
(namespace_identifier) @reference.namespace
(identifier) @reference.identifier
(field_identifier) @reference.field
