// Placeholder for the console: shows whether the API answers.
const app = document.getElementById('app');
fetch('/api/health')
  .then((r) => r.json())
  .then((h) => {
    const p = document.createElement('p');
    p.textContent = `API: ${h.message}`;
    app.appendChild(p);
  })
  .catch(() => {});
