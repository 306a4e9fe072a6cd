using System.Text.Json;

namespace Engine.Grammar;

internal sealed partial class JsonSchemaToGrammar
{
    /// <summary>
    /// One grammar from several JSON schemas and rules of the caller's, as llama.cpp's common_grammar_builder composes them
    /// for tool calls: each function's arguments are a schema, and the family's fixed text around them is the caller's
    /// rules. The schemas share the converter's rules (space, string, number, ...), so the grammar holds each once.
    /// </summary>
    public sealed class Builder
    {
        readonly JsonSchemaToGrammar _converter = new(default);

        /// <summary>Adds a schema's rules under <paramref name="name"/>; returns the rule name that matches it.</summary>
        /// <exception cref="GrammarException">The schema is invalid or uses an unsupported keyword.</exception>
        public string AddSchema(string name, JsonElement schema, string where)
        {
            _converter._root = schema;
            return _converter.Visit(schema, name, where);
        }

        /// <summary>Adds a rule; returns its name (made unique when another rule took it with a different body).</summary>
        public string AddRule(string name, string body) => _converter.AddRule(name, body);

        /// <summary>The grammar text, rules sorted by name.</summary>
        public string Build() => _converter.Format();
    }
}
