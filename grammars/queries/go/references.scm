(call_expression function: (identifier) @reference.call)
(call_expression function: (selector_expression field: (field_identifier) @reference.call))
(type_identifier) @reference.type
(package_identifier) @reference.namespace
(selector_expression field: (field_identifier) @reference.field)
(identifier) @reference.identifier
