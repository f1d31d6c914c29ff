(call function: (identifier) @reference.call)
(call function: (attribute attribute: (identifier) @reference.call))
(type (identifier) @reference.type)
(attribute attribute: (identifier) @reference.field)
(identifier) @reference.identifier
