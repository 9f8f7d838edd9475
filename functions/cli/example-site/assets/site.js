// Marks the current page in the nav and shows how long ago this deployment was built.
for (const link of document.querySelectorAll("nav a")) {
  if (link.pathname === location.pathname) link.setAttribute("aria-current", "page");
}
const built = document.querySelector("[data-built]");
if (built) {
  const minutes = Math.round((Date.now() - Date.parse(built.dataset.built)) / 60000);
  built.textContent = minutes < 1 ? "just now" : `${minutes} min ago`;
}
