(call_expression function: (identifier) @reference.call)
(call_expression function: (member_expression property: (property_identifier) @reference.call))
(new_expression constructor: (identifier) @reference.type)
(type_identifier) @reference.type
(member_expression property: (property_identifier) @reference.field)
(identifier) @reference.identifier
