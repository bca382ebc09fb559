package api

import (
	"encoding/json"
	"fmt"
	"mime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
	"gopkg.in/yaml.v3"
)

// TestOpenAPIExamples: every operation of openapi.yaml has a description
// and shows, as named examples with a summary, a request (when it takes a
// JSON body), an answer for each success response with a body, and at least
// one problem answer; and every example of its bodies and parameters is
// valid against its schema (formats asserted, as the contract checker
// does), a problem example being one of its own status.
func TestOpenAPIExamples(t *testing.T) {
	failures, err := exampleFailures(openapiYAML)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range failures {
		t.Error(f)
	}
}

// TestOpenAPIExamplesCheckCatchesBreaks: the check above fails on a broken
// or missing example.
func TestOpenAPIExamplesCheckCatchesBreaks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		path    []string // from the document root to the node to break
		breakIt func(n *yaml.Node)
		want    string // a failure naming the break contains this
	}{
		{"a status that is not in the enum",
			[]string{"paths", "/v1/customers", "post", "responses", "201", "content", "application/json", "examples"},
			func(n *yaml.Node) { setMember(firstValue(n, "value"), "status", "ALIVE") },
			"POST /v1/customers: 201 application/json example registered: breaks its schema"},
		{"a time without milliseconds",
			[]string{"paths", "/v1/contacts/{id}", "patch", "responses", "200", "content", "application/json", "examples"},
			func(n *yaml.Node) { setMember(firstValue(n, "value"), "updatedAt", "2026-11-25T11:02:17Z") },
			"PATCH /v1/contacts/{id}: 200 application/json example patched: breaks its schema"},
		{"a request with an unknown member",
			[]string{"paths", "/v1/customers/{id}/terminate", "post", "requestBody", "content", "application/json", "examples"},
			func(n *yaml.Node) { setMember(firstValue(n, "value"), "colour", "red") },
			"POST /v1/customers/{id}/terminate: request application/json example temporary: breaks its schema"},
		{"a problem example of another status",
			[]string{"paths", "/v1/customers/{id}", "get", "responses", "404", "content", "application/problem+json", "examples"},
			func(n *yaml.Node) { setMember(firstValue(n, "value"), "status", "410") },
			"GET /v1/customers/{id}: 404 application/problem+json example notFound: status 410"},
		{"no request example",
			[]string{"paths", "/v1/customers/{id}/tokens", "post", "requestBody", "content", "application/json"},
			func(n *yaml.Node) { deleteMember(n, "examples") },
			"POST /v1/customers/{id}/tokens: request application/json has no examples"},
		{"no success example",
			[]string{"paths", "/v1/contacts/{id}/timeline", "get", "responses", "200", "content", "application/json"},
			func(n *yaml.Node) { deleteMember(n, "examples") },
			"GET /v1/contacts/{id}/timeline: 200 application/json has no examples"},
		{"a parameter example of the wrong type",
			[]string{"components", "parameters", "CustomerId", "examples"},
			func(n *yaml.Node) { setMember(n.Content[1], "value", "42") },
			"GET /v1/customers/{id}: parameter id example customer: breaks its schema"},
		{"an example without a summary",
			[]string{"paths", "/healthz", "get", "responses", "200", "content", "application/json", "examples"},
			func(n *yaml.Node) { deleteMember(n.Content[1], "summary") },
			"GET /healthz: 200 application/json example up: no summary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var root yaml.Node
			if err := yaml.Unmarshal(openapiYAML, &root); err != nil {
				t.Fatal(err)
			}
			n := yamlAt(root.Content[0], tc.path...)
			if n == nil {
				t.Fatalf("openapi.yaml has no %s", strings.Join(tc.path, " > "))
			}
			tc.breakIt(n)
			doc, err := yaml.Marshal(&root)
			if err != nil {
				t.Fatal(err)
			}
			failures, err := exampleFailures(doc)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(failures, func(f string) bool { return strings.Contains(f, tc.want) }) {
				t.Errorf("the break went unnoticed: want a failure with %q, got %q", tc.want, failures)
			}
		})
	}
}

// exampleFailures checks the examples of an OpenAPI 3.1 document and
// describes each failure as "METHOD /path: where: what".
func exampleFailures(doc []byte) ([]string, error) {
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	model, err := d.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if model.Model.Paths == nil || orderedmap.Len(model.Model.Paths.PathItems) == 0 {
		return nil, fmt.Errorf("openapi.yaml: no paths")
	}
	ec := &exampleChecker{v: schema_validation.NewSchemaValidator(config.WithFormatAssertions())}
	operations := 0
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			operations++
			name := strings.ToUpper(method) + " " + path
			ec.operation(name, op)
			ec.parameters(name, append(slices.Clone(item.Parameters), op.Parameters...))
		}
	}
	if operations == 0 {
		return nil, fmt.Errorf("openapi.yaml: no operations")
	}
	return ec.failures, nil
}

type exampleChecker struct {
	v        schema_validation.SchemaValidator
	failures []string
}

func (ec *exampleChecker) fail(format string, args ...any) {
	ec.failures = append(ec.failures, fmt.Sprintf(format, args...))
}

func (ec *exampleChecker) operation(name string, op *v3.Operation) {
	if strings.TrimSpace(op.Description) == "" {
		ec.fail("%s: no description", name)
	}
	if rb := op.RequestBody; rb != nil {
		for ct, mt := range rb.Content.FromOldest() {
			ec.mediaType(name, "request "+ct, ct, mt, isJSONMediaType(ct), 0)
		}
	}
	if op.Responses == nil {
		ec.fail("%s: no responses", name)
		return
	}
	// Every success answer with a body shows one (a 204 or a redirect has
	// none to show); problems are shown where the document has them, at
	// least one per operation, and each is checked.
	problem := false
	for code, resp := range op.Responses.Codes.FromOldest() {
		status, err := strconv.Atoi(code)
		if err != nil {
			continue // a range such as 4XX: no status to compare
		}
		for ct, mt := range resp.Content.FromOldest() {
			if n := ec.mediaType(name, code+" "+ct, ct, mt, status < 300, status); n > 0 && status >= 400 {
				problem = true
			}
		}
	}
	if !problem {
		ec.fail("%s: no problem response has an example", name)
	}
}

// mediaType checks the examples of one request or response body and
// returns how many it has. status is the response's (0 for a request).
func (ec *exampleChecker) mediaType(op, where, contentType string, mt *v3.MediaType, required bool, status int) int {
	if mt.Example != nil {
		ec.fail("%s: %s uses example: name it under examples, with a summary", op, where)
	}
	n := orderedmap.Len(mt.Examples)
	if n == 0 {
		if required {
			ec.fail("%s: %s has no examples", op, where)
		}
		return 0
	}
	var schema *base.Schema
	if mt.Schema != nil {
		s, err := mt.Schema.BuildSchema()
		if err != nil {
			ec.fail("%s: %s: schema: %v", op, where, err)
		} else {
			schema = s
		}
	} else {
		ec.fail("%s: %s has no schema to check its examples against", op, where)
	}
	for exName, ex := range mt.Examples.FromOldest() {
		at := fmt.Sprintf("%s: %s example %s", op, where, exName)
		if value, ok := ec.example(at, ex, schema); ok && contentType == "application/problem+json" {
			ec.problem(at, value, status)
		}
	}
	return n
}

// parameters checks the examples of an operation's parameters, if any.
func (ec *exampleChecker) parameters(op string, params []*v3.Parameter) {
	for _, p := range params {
		if p == nil || orderedmap.Len(p.Examples) == 0 {
			continue
		}
		var schema *base.Schema
		if p.Schema != nil {
			s, err := p.Schema.BuildSchema()
			if err != nil {
				ec.fail("%s: parameter %s: schema: %v", op, p.Name, err)
			}
			schema = s
		}
		for exName, ex := range p.Examples.FromOldest() {
			ec.example(fmt.Sprintf("%s: parameter %s example %s", op, p.Name, exName), ex, schema)
		}
	}
}

// example checks one named example: a summary, a value in the document,
// valid against schema (when there is one). It returns the value.
func (ec *exampleChecker) example(at string, ex *base.Example, schema *base.Schema) (any, bool) {
	if strings.TrimSpace(ex.Summary) == "" {
		ec.fail("%s: no summary", at)
	}
	if ex.ExternalValue != "" {
		ec.fail("%s: externalValue: put the value in the document", at)
	}
	if ex.Value == nil {
		ec.fail("%s: no value", at)
		return nil, false
	}
	var value any
	if err := ex.Value.Decode(&value); err != nil {
		ec.fail("%s: value: %v", at, err)
		return nil, false
	}
	body, err := json.Marshal(value)
	if err != nil {
		ec.fail("%s: value is not JSON: %v", at, err)
		return nil, false
	}
	if schema != nil {
		if ok, errs := ec.v.ValidateSchemaBytes(schema, body); !ok {
			for _, e := range errs {
				var details strings.Builder
				for _, f := range e.SchemaValidationErrors {
					fmt.Fprintf(&details, "; %s: %s", f.FieldPath, f.Reason)
				}
				ec.fail("%s: breaks its schema: %s: %s%s", at, e.Message, e.Reason, details.String())
			}
		}
	}
	return value, true
}

// problem checks that a problem example is one of its response's status,
// with the type link of its code.
func (ec *exampleChecker) problem(at string, value any, status int) {
	p, ok := value.(map[string]any)
	if !ok {
		ec.fail("%s: a problem document is an object", at)
		return
	}
	if got := fmt.Sprint(p["status"]); got != strconv.Itoa(status) {
		ec.fail("%s: status %s in a %d answer", at, got, status)
	}
	if code, _ := p["code"].(string); p["type"] != "/docs#problem-"+code {
		ec.fail("%s: type %v does not link code %q", at, p["type"], code)
	}
}

func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// yamlAt returns the value at keys below mapping node n, or nil.
func yamlAt(n *yaml.Node, keys ...string) *yaml.Node {
	for _, key := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// firstValue returns the member key of the first value of mapping node n
// (the first named example's value, say).
func firstValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode || len(n.Content) < 2 {
		return nil
	}
	return yamlAt(n.Content[1], key)
}

// setMember sets (or adds) the scalar member key of mapping node n; a value
// that reads as a number stays one.
func setMember(n *yaml.Node, key, value string) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	v := &yaml.Node{Kind: yaml.ScalarNode, Value: value}
	if _, err := strconv.Atoi(value); err != nil {
		v.Tag, v.Style = "!!str", yaml.DoubleQuotedStyle
	} else {
		v.Tag = "!!int"
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = v
			return
		}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
}

// deleteMember removes the member key of mapping node n.
func deleteMember(n *yaml.Node, key string) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = slices.Delete(n.Content, i, i+2)
			return
		}
	}
}
