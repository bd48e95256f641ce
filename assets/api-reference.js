// Starts the vendored Swagger UI on the page /docs/api, reading the window's own OpenAPI
// document. A file of its own: the page's Content-Security-Policy allows no inline script.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No call to an outside validator: the page works with no internet.
    validatorUrl: null,
    defaultModelsExpandDepth: 1,
    persistAuthorization: false,
  });
});
