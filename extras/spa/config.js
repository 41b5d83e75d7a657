// Where the auth-api is. The SPA lives on its own origin; the API's CORS_ALLOWED_ORIGINS must
// list this page's origin.
export const API_URL = "http://localhost:3001";
