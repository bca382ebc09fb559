package api

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// schemaKeywords are the keys a Schema Object may have (JSON Schema 2020-12
// and OpenAPI 3.1's additions). The OpenAPI meta-schema lets a schema carry
// any key, so a stray one (a description that YAML split into a key, a
// misspelt keyword) passes document validation; this catches it.
var schemaKeywords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`$schema $id $ref $anchor $dynamicRef $dynamicAnchor $defs $comment $vocabulary
		type enum const multipleOf maximum exclusiveMaximum minimum exclusiveMinimum maxLength minLength pattern
		maxItems minItems uniqueItems maxContains minContains maxProperties minProperties required dependentRequired
		allOf anyOf oneOf not if then else dependentSchemas prefixItems items contains properties patternProperties
		additionalProperties propertyNames unevaluatedItems unevaluatedProperties format contentEncoding
		contentMediaType contentSchema title description default deprecated readOnly writeOnly examples
		discriminator xml externalDocs example`) {
		schemaKeywords[k] = true
	}
}

// strayKeys walks a Schema Object and returns the path of every key that
// is no schema keyword (x- extensions allowed).
func strayKeys(n *yaml.Node, path string) []string {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	var out []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch {
		case strings.HasPrefix(k, "x-"):
		case !schemaKeywords[k]:
			out = append(out, path+"."+k)
		case k == "properties" || k == "patternProperties" || k == "$defs" || k == "dependentSchemas":
			for j := 0; j+1 < len(v.Content); j += 2 {
				out = append(out, strayKeys(v.Content[j+1], path+"."+k+"."+v.Content[j].Value)...)
			}
		case k == "allOf" || k == "anyOf" || k == "oneOf" || k == "prefixItems":
			for j, s := range v.Content {
				out = append(out, strayKeys(s, path+"."+k+"["+string(rune('0'+j))+"]")...)
			}
		case k == "items" || k == "not" || k == "additionalProperties" || k == "contains" || k == "if" || k == "then" ||
			k == "else" || k == "propertyNames" || k == "unevaluatedItems" || k == "unevaluatedProperties" || k == "contentSchema":
			out = append(out, strayKeys(v, path+"."+k)...)
		}
	}
	return out
}

// schemasIn finds every Schema Object of a document: the component schemas
// and every value of a "schema" key.
func schemasIn(n *yaml.Node, path string, visit func(*yaml.Node, string)) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			schemasIn(c, path+"["+string(rune('0'+i%10))+"]", visit)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			switch {
			case k == "schema":
				visit(v, path+".schema")
			case k == "schemas" && strings.HasSuffix(path, "components"):
				for j := 0; j+1 < len(v.Content); j += 2 {
					visit(v.Content[j+1], path+".schemas."+v.Content[j].Value)
				}
			case k == "examples" || k == "example":
				// values, not schemas
			default:
				schemasIn(v, path+"."+k, visit)
			}
		}
	}
}

func TestOpenAPIHasNoStrayKeys(t *testing.T) {
	check := func(doc []byte) []string {
		var root yaml.Node
		if err := yaml.Unmarshal(doc, &root); err != nil {
			t.Fatal(err)
		}
		var stray []string
		schemasIn(&root, "", func(s *yaml.Node, path string) { stray = append(stray, strayKeys(s, path)...) })
		return stray
	}
	if stray := check(openapiYAML); len(stray) > 0 {
		t.Fatalf("keys that are no schema keyword: %v", stray)
	}
	// The check itself: a description YAML split into a key is caught.
	broken := []byte("components:\n  schemas:\n    RegisterRequest:\n      type: object\n      properties:\n        partnerId:\n          type: string\n          description: the caller\n          must be: the caller's own\n")
	if stray := check(broken); len(stray) != 1 || !strings.HasSuffix(stray[0], ".components.schemas.RegisterRequest.properties.partnerId.must be") {
		t.Fatalf("a stray key went unnoticed: %v", stray)
	}
}
