(function_call name: (identifier) @reference.call)
(function_call name: (dot_index_expression field: (identifier) @reference.call))
(function_call name: (method_index_expression method: (identifier) @reference.call))
(dot_index_expression field: (identifier) @reference.field)
(identifier) @reference.identifier
